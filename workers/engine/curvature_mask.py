"""CAPO's token mask (Curvature-Aware Policy Optimization; Melo, Abate and Gal, "Stabilizing
Policy Gradients for Sample-Efficient Reinforcement Learning in LLM Reasoning", arXiv
2510.00819, ICLR 2026; code: github.com/luckeciano/stable-pg-llm).

Before the policy step, each completion token's own update is predicted with a second-order
model restricted to the LM head W (logits z = W h), and tokens whose predicted update leaves a
local trust region are left out of the loss. For a token with final hidden state h, action a,
advantage A and policy pi over its support S (its top-k tokens):

    v = e_a - pi                          (S,)       d log pi(a) / dz
    g = A * v (x) h                       (S, H)     the token's gradient on W's rows in S
    G = Adam(g)                           (S, H)     the step Adam would take for g (below)
    u = G h                               (S,)       the change in the logits per unit of lr
    m_H = lr <g, G> + lr^2 / 2 * A * ((v . u)^2 - u^T F u),   F = diag(pi) - pi pi^T
    m_F = lr^2 / 2 * (v . u)^2

m_H is the predicted change of the token's objective (first order plus its Hessian term), m_F
the predicted policy shift (the KL, from the Fisher). A token is kept when
``m_F < kl_threshold`` and ``-objective_threshold < m_H < objective_threshold`` (the
published recipes' symmetric test, ``hessian_symmetric_clipping: true``; defaults 1e-4 and
0.01 from their GRPO recipe, ``fisher_token_mask_tau`` and ``hessian_token_mask_tau``).

Adam(g) follows the authors' ``SparseAdamModel``: the prospective moments of one more step,
m' = b1 m + (1 - b1) g and s' = b2 s + (1 - b2) g^2, bias-corrected at step t + 1, give
G = m'_hat / (sqrt(s'_hat) + eps); with no moments yet (the first step, or an optimiser
without Adam's state) G = g, as their code does.

[R] Where Steer departs from the authors' code, reconstructed rather than taken from it:
the moments m, s and step t are the real AdamW's state of ``lm_head.weight`` (the authors keep
a shadow Adam over the head, fed the batch's mean head gradient, which is what the real
optimiser's state of that weight tracks; its first moment averages the loss's gradient, so
m = -exp_avg in the ascent sign of g); logits are divided by the sampling temperature
(h / temperature stands for h), since Steer's loss reads log-probs at that temperature; the
support is the top ``top_k`` tokens of the policy at the position with the sampled token
swapped in for the last one when it is not among them (the authors sample with top-k, so theirs
always is), pi renormalised over it; ``top_k`` 0 takes the whole vocabulary. AdamW's weight
decay is left out of the predicted step, as in the authors' Adam model. Only the token level is
implemented (the authors' ``capo_only`` recipe), not their sentence and batch levels.
With tied embeddings (SmolLM2 and most small policies) ``lm_head.weight`` is the input
embedding too, so its AdamW moments also hold the embedding's gradients, where the authors'
shadow Adam sees the head's alone. With ``num_iterations`` > 1 the mask is computed once per
step, from the state before it, where the authors recompute it at every loss evaluation.

Everything here is plain torch and runs on the CPU as on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Elements of a (tokens, S, H) gradient chunk: bounds memory whatever the batch.
_CHUNK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class AdamState:
    """The Adam moments of the LM head's weight (vocab, hidden) and the steps taken."""

    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    step: int
    beta1: float
    beta2: float
    eps: float


@dataclass(frozen=True)
class CurvatureTerms:
    """Per selected token: m_H, the predicted change of its objective, and m_F, the predicted
    KL of its update (both (M,))."""

    objective_shift: torch.Tensor
    kl_shift: torch.Tensor


def adam_direction(g: torch.Tensor, m: torch.Tensor | None, s: torch.Tensor | None,
                   state: AdamState | None) -> torch.Tensor:
    """Adam's step for gradient ``g`` from moments ``m``, ``s`` (same shape, or None with no
    state), without changing them: m'_hat / (sqrt(s'_hat) + eps) at step t + 1; g itself
    when there is no state."""
    if state is None or m is None or s is None:
        return g
    t = state.step + 1
    m_next = state.beta1 * m + (1.0 - state.beta1) * g
    s_next = state.beta2 * s + (1.0 - state.beta2) * g * g
    m_hat = m_next / (1.0 - state.beta1 ** t)
    s_hat = s_next / (1.0 - state.beta2 ** t)
    return m_hat / (s_hat.sqrt() + state.eps)


def support(logits: torch.Tensor, actions: torch.Tensor, top_k: int
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids (M, S), pi (M, S), action one-hot (M, S)) of each token's support: the ``top_k``
    most likely tokens with the action swapped in for the last when it is not among them
    (``top_k`` 0 or >= the vocabulary: every token), pi the soft-max over the support."""
    m, vocab = logits.shape
    if top_k <= 0 or top_k >= vocab:
        ids = torch.arange(vocab, device=logits.device).expand(m, vocab)
    else:
        ids = logits.topk(top_k, dim=-1).indices
        missing = ~(ids == actions[:, None]).any(dim=-1)
        ids = ids.clone()
        ids[missing, -1] = actions[missing]
    pi = torch.softmax(logits.gather(-1, ids), dim=-1)
    onehot = (ids == actions[:, None]).to(pi.dtype)
    return ids, pi, onehot


def curvature_terms(hidden: torch.Tensor, ids: torch.Tensor, pi: torch.Tensor,
                    onehot: torch.Tensor, advantages: torch.Tensor, lr: float,
                    state: AdamState | None) -> CurvatureTerms:
    """m_H and m_F of M tokens: ``hidden`` (M, H) (already divided by the temperature),
    ``ids``, ``pi``, ``onehot`` (M, S) from ``support``, ``advantages`` (M,) each token's
    completion's, ``lr`` the step's learning rate, ``state`` the head's Adam state or None."""
    v = onehot - pi                                                  # (M, S)
    a = advantages.to(pi.dtype)
    g = a[:, None, None] * v[:, :, None] * hidden[:, None, :]        # (M, S, H)
    m = s = None
    if state is not None:
        # torch's exp_avg averages the loss's gradient, -g's sign: the ascent moment is -exp_avg
        m, s = -state.exp_avg[ids].to(g.dtype), state.exp_avg_sq[ids].to(g.dtype)
    big_g = adam_direction(g, m, s, state)
    grad_dot = (g * big_g).sum(dim=(1, 2))                           # <g, G>
    u = torch.einsum("msh,mh->ms", big_g, hidden)                    # G h
    vu = (v * u).sum(dim=-1)
    pu = (pi * u).sum(dim=-1)
    u_f_u = (pi * u * u).sum(dim=-1) - pu * pu                       # u^T (diag(pi) - pi pi^T) u
    hessian = a * (vu * vu - u_f_u)
    return CurvatureTerms(objective_shift=lr * grad_dot + 0.5 * lr * lr * hessian,
                          kl_shift=0.5 * lr * lr * vu * vu)


def keep_tokens(terms: CurvatureTerms, *, kl_threshold: float, objective_threshold: float
                ) -> torch.Tensor:
    """(M,) bool: the tokens inside the trust region, m_F < kl_threshold and
    |m_H| < objective_threshold."""
    return (terms.kl_shift < kl_threshold) & (terms.objective_shift.abs() < objective_threshold)


@torch.no_grad()
def capo_token_mask(hidden: torch.Tensor, head_weight: torch.Tensor, actions: torch.Tensor,
                    advantages: torch.Tensor, mask: torch.Tensor, *, lr: float,
                    temperature: float, top_k: int, kl_threshold: float,
                    objective_threshold: float, state: AdamState | None = None
                    ) -> torch.Tensor:
    """CAPO's keep-mask (N, T) (float, as ``mask``): 1 where ``mask`` is 1 and the token's
    predicted update stays inside the trust region. ``hidden`` (N, T, H) are the final hidden
    states that predict ``actions`` (N, T), ``head_weight`` (V, H) the LM head, ``advantages``
    (N,). Tokens outside ``mask`` are not looked at and stay 0."""
    keep = torch.zeros_like(mask)
    where = mask.bool()
    if not bool(where.any()):
        return keep
    rows = torch.nonzero(where)[:, 0]
    h_all = hidden[where]                                            # (M, H)
    acts = actions[where]
    adv = advantages[rows].float()
    vocab, size = head_weight.shape
    width = vocab if top_k <= 0 else min(top_k, vocab)
    chunk = max(1, min(_CHUNK_ELEMENTS // max(width * size, 1),
                       _CHUNK_ELEMENTS // max(vocab, 1)))
    kept = []
    for i in range(0, h_all.shape[0], chunk):
        h = h_all[i:i + chunk]
        # the logits as the model makes them (in the head's precision, no float32 copy of a
        # large head), at the temperature as the loss reads them; the maths in float32
        logits = (h.to(head_weight.dtype) @ head_weight.T).float() / temperature
        ids, pi, onehot = support(logits, acts[i:i + chunk], top_k)
        terms = curvature_terms(h.float() / temperature, ids, pi, onehot, adv[i:i + chunk], lr,
                                state)
        kept.append(keep_tokens(terms, kl_threshold=kl_threshold,
                                objective_threshold=objective_threshold))
    keep[where] = torch.cat(kept).to(keep.dtype)
    return keep


def head_adam_state(optimizer: torch.optim.Optimizer, weight: torch.nn.Parameter
                    ) -> AdamState | None:
    """The Adam state of ``weight`` in ``optimizer`` (its float32 master copy under
    ``MasterWeightsAdamW``), or None before its first step or for an optimiser without Adam's
    moments (SGD: G = g)."""
    param = weight
    for low, master in getattr(optimizer, "_pairs", ()):
        if low is weight:
            param = master
            break
    state = optimizer.state.get(param) if hasattr(optimizer, "state") else None
    if not state or "exp_avg" not in state or "exp_avg_sq" not in state:
        return None
    group = next((g for g in optimizer.param_groups if any(p is param for p in g["params"])), None)
    if group is None or "betas" not in group:
        return None
    beta1, beta2 = group["betas"]
    return AdamState(exp_avg=state["exp_avg"], exp_avg_sq=state["exp_avg_sq"],
                     step=int(state["step"]), beta1=float(beta1), beta2=float(beta2),
                     eps=float(group["eps"]))
