"""The clipped policy-gradient loss, its KL penalty and its aggregations; pure tensor maths.

Shapes: N sequences, T completion positions; ``mask`` (N, T) is 1 on generated tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .rollout import position_ids_from_mask


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   num_completion_tokens: int, temperature: float, *, with_entropy: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of the last T tokens of ``input_ids`` under ``log_softmax(logits/temperature)``
    (the sampling distribution), and optionally the entropy of that distribution (no grad).
    input_ids, attention_mask (N, P + T) -> logprobs (N, T), entropy (N, T) or None."""
    t = num_completion_tokens
    logits = model(input_ids=input_ids, attention_mask=attention_mask,
                   position_ids=position_ids_from_mask(attention_mask),
                   logits_to_keep=t + 1).logits[:, :-1]  # (N, T, V): position i predicts i+1
    logprobs_all = torch.log_softmax(logits.float() / temperature, dim=-1)
    targets = input_ids[:, -t:]
    logprobs = logprobs_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logprobs_all.exp() * logprobs_all).sum(dim=-1)
    return logprobs, entropy


def importance_log_ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor,
                         level: str) -> torch.Tensor:
    """log pi/pi_old per token ('token'), or GSPO's per-sequence geometric mean
    mean_t(log pi - log pi_old) broadcast over the sequence ('sequence'). (N, T) -> (N, T)."""
    log_ratio = torch.where(mask.bool(), logprobs - old_logprobs, 0.0)  # padding: 0, even from -inf
    if level == "token":
        return log_ratio
    if level == "sequence":
        per_seq = log_ratio.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return per_seq.unsqueeze(1).expand_as(log_ratio)
    raise ValueError(f"unknown importance level {level!r}")


@dataclass
class PolicyLossTerms:
    """Per-token pieces of the clipped loss, each (N, T). For the 'ppo' surrogate:"""

    ratio: torch.Tensor
    pg_loss1: torch.Tensor  # -A * ratio  ('cispo': -A * sg(ratio) * log pi)
    pg_loss2: torch.Tensor  # -A * clip(ratio, 1 - eps_low, 1 + eps_high)  ('cispo': -A * sg(clip) * log pi)
    pg_loss: torch.Tensor  # max(pg_loss1, pg_loss2)  ('cispo': pg_loss2)
    clipped_low: torch.Tensor  # ratio < 1 - eps_low where A < 0 (bool)  ('cispo': where A != 0)
    clipped_high: torch.Tensor  # ratio > 1 + eps_high where A > 0 (bool)  ('cispo': where A != 0)

    @property
    def clipped_region(self) -> torch.Tensor:
        return self.clipped_low | self.clipped_high


def clipped_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor,
                        advantages: torch.Tensor, mask: torch.Tensor, *,
                        eps_low: float | torch.Tensor, eps_high: float | torch.Tensor,
                        level: str = "token") -> PolicyLossTerms:
    """PPO/GRPO surrogate with separate lower and upper clip (DAPO clip-higher).
    logprobs, old_logprobs, mask (N, T); advantages (N,) -> PolicyLossTerms of (N, T).

    ``eps_low`` and ``eps_high`` are numbers, or (N,) tensors giving each sequence its own
    clips (DISPO: one pair for correct completions, another for incorrect ones)."""
    ratio = torch.exp(importance_log_ratio(logprobs, old_logprobs, mask, level))
    adv = advantages.unsqueeze(1)
    low, high, clipped = _clip(ratio, eps_low, eps_high)
    pg_loss1 = -adv * ratio
    pg_loss2 = -adv * clipped
    return PolicyLossTerms(
        ratio=ratio, pg_loss1=pg_loss1, pg_loss2=pg_loss2,
        pg_loss=torch.maximum(pg_loss1, pg_loss2),
        clipped_low=(ratio < low) & (adv < 0),
        clipped_high=(ratio > high) & (adv > 0))


def _clip(ratio: torch.Tensor, eps_low: float | torch.Tensor, eps_high: float | torch.Tensor):
    """(low, high, clamp(ratio, low, high)): the bounds as numbers, or (N, 1) columns for per-row clips."""
    if isinstance(eps_low, torch.Tensor) or isinstance(eps_high, torch.Tensor):
        n = ratio.shape[0]
        low = 1.0 - torch.as_tensor(eps_low, dtype=ratio.dtype, device=ratio.device).expand(n)[:, None]
        high = 1.0 + torch.as_tensor(eps_high, dtype=ratio.dtype, device=ratio.device).expand(n)[:, None]
    else:
        low, high = 1.0 - eps_low, 1.0 + eps_high
    return low, high, torch.clamp(ratio, low, high)


def clipped_weight_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor,
                               advantages: torch.Tensor, mask: torch.Tensor, *,
                               eps_low: float | torch.Tensor, eps_high: float | torch.Tensor,
                               level: str = "token") -> PolicyLossTerms:
    """CISPO's objective: -sg(clip(ratio, 1 - eps_low, 1 + eps_high)) * A * log pi per token.

    Unlike the 'ppo' surrogate no token loses its gradient: a clipped ratio only caps the
    weight of its token's log-prob gradient, whatever the advantage's sign, so a lower and an
    upper clip bind for positive and negative advantages alike (with per-row clips, DISPO's
    four). At ratio 1 (the first pass) its gradient equals the 'ppo' one: A * grad log pi.
    Shapes as ``clipped_policy_loss``."""
    ratio = torch.exp(importance_log_ratio(logprobs, old_logprobs, mask, level))
    adv = advantages.unsqueeze(1)
    logprobs = torch.where(mask.bool(), logprobs, 0.0)  # padding's log-probs never reach the loss, even -inf
    low, high, clipped = _clip(ratio.detach(), eps_low, eps_high)
    pg_loss1 = -adv * ratio.detach() * logprobs
    pg_loss2 = -adv * clipped * logprobs
    moving = adv != 0
    return PolicyLossTerms(ratio=ratio, pg_loss1=pg_loss1, pg_loss2=pg_loss2, pg_loss=pg_loss2,
                           clipped_low=(ratio < low) & moving, clipped_high=(ratio > high) & moving)


SURROGATE_LOSSES = {"ppo": clipped_policy_loss, "cispo": clipped_weight_policy_loss}


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || pi_ref) per token: exp(d) - d - 1, d = ref - pi.
    (N, T) -> (N, T), >= 0."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1.0


# --- aggregation ---------------------------------------------------------------------------
# Each takes per-token values (N, T) and mask (N, T) and returns a scalar. ``batch_tokens`` and
# ``batch_sequences`` are the totals over the whole batch, so that summing the results of
# micro-batches gives exactly the full-batch value; left None they come from the inputs.

def token_mean(values, mask, *, max_new_tokens, batch_tokens=None, batch_sequences=None):
    """Sum over all tokens / number of tokens in the batch (DAPO)."""
    total = mask.sum() if batch_tokens is None else batch_tokens
    return (values * mask).sum() / max(float(total), 1.0)


def seq_mean_token_mean(values, mask, *, max_new_tokens, batch_tokens=None,
                        batch_sequences=None):
    """Mean over sequences of each sequence's token mean (GRPO)."""
    n = mask.shape[0] if batch_sequences is None else batch_sequences
    per_seq = (values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return per_seq.sum() / max(float(n), 1.0)


def seq_mean_token_sum_norm(values, mask, *, max_new_tokens, batch_tokens=None,
                            batch_sequences=None):
    """Mean over sequences of token sums / max_new_tokens, a constant (Dr. GRPO)."""
    n = mask.shape[0] if batch_sequences is None else batch_sequences
    per_seq = (values * mask).sum(dim=1) / max_new_tokens
    return per_seq.sum() / max(float(n), 1.0)


LOSS_AGGREGATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "token_mean": token_mean,
    "seq_mean_token_mean": seq_mean_token_mean,
    "seq_mean_token_sum_norm": seq_mean_token_sum_norm,
}


def aggregate_loss(values: torch.Tensor, mask: torch.Tensor, mode: str, *, max_new_tokens: int,
                   batch_tokens: float | None = None, batch_sequences: int | None = None
                   ) -> torch.Tensor:
    """Reduce per-token (N, T) values to a scalar with the named aggregation."""
    return LOSS_AGGREGATIONS[mode](values, mask.to(values.dtype), max_new_tokens=max_new_tokens,
                                   batch_tokens=batch_tokens, batch_sequences=batch_sequences)
