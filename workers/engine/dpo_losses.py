"""The DPO losses of TRL 1.16's ``DPOTrainer``, by name: pure functions of the pairs' summed
completion log-probs under the policy and the reference, each (B,).

``dpo_loss`` combines the losses a config names (``dpo.loss_type``, one name or a list weighted by
``dpo.loss_weights``) into one loss per pair, and gives the implicit rewards TRL reports.
``tests/engine/test_dpo_loss_types.py`` checks each against TRL's own code, value and gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .dpo_config import DPO_LOSS_TYPES


@dataclass(frozen=True)
class DPOLoss:
    """Per-pair values, each (B,): the loss and the implicit rewards β·(log π − log π_ref)."""

    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor


@dataclass(frozen=True)
class _Pairs:
    """What the losses read of B pairs, each (B,): summed completion log-probs, their log-ratios
    to the reference, the completions' token counts, and the loss settings."""

    chosen_logps: Tensor
    rejected_logps: Tensor
    ref_chosen_logps: Tensor
    ref_rejected_logps: Tensor
    chosen_logratios: Tensor
    rejected_logratios: Tensor
    chosen_lengths: Tensor | None
    rejected_lengths: Tensor | None
    beta: float
    label_smoothing: float
    discopop_tau: float

    @property
    def delta(self) -> Tensor:
        return self.chosen_logratios - self.rejected_logratios

    def averaged_delta(self, loss_type: str) -> Tensor:
        """Δ with each side's log-ratio averaged over its completion's tokens (IPO, sigmoid_norm)."""
        if self.chosen_lengths is None or self.rejected_lengths is None:
            raise ValueError(f"the {loss_type} loss needs the completions' token counts")
        return (self.chosen_logratios / self.chosen_lengths.clamp(min=1)
                - self.rejected_logratios / self.rejected_lengths.clamp(min=1))


def _smoothed_sigmoid(delta: Tensor, beta: float, epsilon: float) -> Tensor:
    return -(1 - epsilon) * F.logsigmoid(beta * delta) - epsilon * F.logsigmoid(-beta * delta)


def _ipo(p: _Pairs) -> Tensor:
    return (p.averaged_delta("ipo") - 1 / (2 * p.beta)) ** 2


def _exo_pair(p: _Pairs) -> Tensor:
    # EXO-pref (Ji et al. 2024, Eq. 16): KL of softmax(βΔ) over {chosen, rejected} from [1 − ε, ε].
    if not p.label_smoothing > 0:
        raise ValueError("the exo_pair loss needs label_smoothing > 0 (the EXO paper uses 1e-3)")
    logits = p.beta * p.delta
    epsilon = torch.tensor(p.label_smoothing, device=logits.device)
    return (torch.sigmoid(logits) * (F.logsigmoid(logits) - torch.log1p(-epsilon))
            + torch.sigmoid(-logits) * (F.logsigmoid(-logits) - torch.log(epsilon)))


def _nca_pair(p: _Pairs) -> Tensor:
    chosen, rejected = p.beta * p.chosen_logratios, p.beta * p.rejected_logratios
    return -F.logsigmoid(chosen) - 0.5 * F.logsigmoid(-chosen) - 0.5 * F.logsigmoid(-rejected)


def _robust(p: _Pairs) -> Tensor:
    epsilon, logits = p.label_smoothing, p.beta * p.delta
    clean = -(1 - epsilon) * F.logsigmoid(logits)
    flipped = -epsilon * F.logsigmoid(-logits)
    return (clean - flipped) / (1 - 2 * epsilon)


def _sppo_hard(p: _Pairs) -> Tensor:
    return (p.chosen_logratios - 0.5 / p.beta) ** 2 + (p.rejected_logratios + 0.5 / p.beta) ** 2


def _aot(p: _Pairs) -> Tensor:
    # AOT (Melnyk et al. 2024): the policy's and the reference's chosen − rejected log-prob gaps,
    # each sorted across the batch, compared rank by rank; so a pair's loss is no longer its own.
    logratios, _ = torch.sort(p.chosen_logps - p.rejected_logps, dim=0)
    ref_logratios, _ = torch.sort(p.ref_chosen_logps - p.ref_rejected_logps, dim=0)
    return _smoothed_sigmoid(logratios - ref_logratios, p.beta, p.label_smoothing)


def _aot_unpaired(p: _Pairs) -> Tensor:
    chosen, _ = torch.sort(p.chosen_logratios, dim=0)
    rejected, _ = torch.sort(p.rejected_logratios, dim=0)
    return _smoothed_sigmoid(chosen - rejected, p.beta, p.label_smoothing)


def _apo_zero(p: _Pairs) -> Tensor:
    return 1 - torch.sigmoid(p.beta * p.chosen_logratios) + torch.sigmoid(p.beta * p.rejected_logratios)


def _apo_down(p: _Pairs) -> Tensor:
    return torch.sigmoid(p.beta * p.chosen_logratios) + 1 - torch.sigmoid(p.beta * p.delta)


def _discopop(p: _Pairs) -> Tensor:
    # DiscoPOP (Chris Lu et al. 2024, Eq. 5): logistic and exponential losses blended by σ(βΔ/τ).
    # exp(−βΔ)·σ(βΔ/τ) as one exp of a sum: for a large negative βΔ the exp alone overflows to inf
    # where σ underflows to 0, and inf·0 made the loss and its gradient NaN (TRL's formula does).
    logits = p.beta * p.delta
    scaled = logits / p.discopop_tau
    return -F.logsigmoid(logits) * torch.sigmoid(-scaled) + torch.exp(F.logsigmoid(scaled) - logits)


def _sft(p: _Pairs) -> Tensor:
    # TRL's: the chosen completions' NLL averaged over all their tokens in the batch, the one value
    # given to every pair (only the mean of the per-pair losses counts).
    if p.chosen_lengths is None:
        raise ValueError("the sft loss needs the completions' token counts")
    return (-p.chosen_logps.sum() / p.chosen_lengths.sum()).expand(p.chosen_logps.shape[0])


def _sigmoid_norm(p: _Pairs) -> Tensor:
    return -F.logsigmoid(p.beta * p.averaged_delta("sigmoid_norm"))


# Each of DPO_LOSS_TYPES: the per-pair losses (B,) of TRL 1.16's DPOTrainer, 'sigmoid' with cDPO.
LOSSES: dict[str, Callable[[_Pairs], Tensor]] = {
    "sigmoid": lambda p: _smoothed_sigmoid(p.delta, p.beta, p.label_smoothing),
    "ipo": _ipo,
    "slic": lambda p: torch.relu(1 - p.beta * p.delta),
    "exo_pair": _exo_pair,
    "nca_pair": _nca_pair,
    "robust": _robust,
    "sppo_hard": _sppo_hard,
    "aot": _aot,
    "aot_unpaired": _aot_unpaired,
    "apo_zero": _apo_zero,
    "apo_down": _apo_down,
    "discopop": _discopop,
    "sft": _sft,
    "sigmoid_norm": _sigmoid_norm,
}
assert set(LOSSES) == set(DPO_LOSS_TYPES)


def dpo_loss(chosen_logps: Tensor, rejected_logps: Tensor, ref_chosen_logps: Tensor, ref_rejected_logps: Tensor,
             *, beta: float, loss_type: str | Sequence[str] = "sigmoid", label_smoothing: float = 0.0,
             chosen_lengths: Tensor | None = None, rejected_lengths: Tensor | None = None,
             loss_weights: Sequence[float] | None = None, discopop_tau: float = 0.05) -> DPOLoss:
    """The DPO loss of B pairs from summed completion log-probs, each (B,), TRL 1.16's formulas.

    ``Δ = (log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))``.
    ``"sigmoid"``: ``−(1−ε)·log σ(βΔ) − ε·log σ(−βΔ)``, ε = ``label_smoothing`` (cDPO; 0 is DPO).
    ``"ipo"``: ``(Δ' − 1/(2β))²`` where Δ' divides each side's log-ratio by its completion's
    token count (``chosen_lengths``, ``rejected_lengths``, (B,)), as TRL does; 'sigmoid_norm' and
    'sft' read them too. The other names of ``DPO_LOSS_TYPES`` as TRL's ``DPOTrainer`` computes
    them (``LOSSES``). A list of names gives ``Σ loss_weights[i]·loss_i`` (weights 1 when None).
    The rewards are ``β·(log π − log π_ref)`` of each side, whatever the loss.
    """
    names = (loss_type,) if isinstance(loss_type, str) else tuple(loss_type)
    weights = (1.0,) * len(names) if loss_weights is None else tuple(loss_weights)
    unknown = [name for name in names if name not in LOSSES]
    if unknown or not names:
        raise ValueError(f"loss_type must be one or more of {DPO_LOSS_TYPES}, got {loss_type!r}")
    if len(weights) != len(names):
        raise ValueError(f"{len(weights)} loss weight(s) for {len(names)} loss type(s)")
    chosen_logratios = chosen_logps - ref_chosen_logps  # (B,)
    rejected_logratios = rejected_logps - ref_rejected_logps  # (B,)
    pairs = _Pairs(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_logratios,
                   rejected_logratios, chosen_lengths, rejected_lengths, beta, label_smoothing, discopop_tau)
    losses = None
    for name, weight in zip(names, weights):
        term = LOSSES[name](pairs)
        if weight != 1.0:
            term = term * weight
        losses = term if losses is None else losses + term
    return DPOLoss(losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach())
