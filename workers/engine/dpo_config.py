"""The typed config of a DPO run: the JSON a DPO Run stores, validated before any work starts.

Three sections: ``policy`` (the model trained, as in ``TrainConfig``), ``optim`` (AdamW, as
in ``TrainConfig``) and ``dpo`` (the loss and the loop). ``DPOTrainConfig.from_dict`` refuses
unknown keys and out-of-range values with a ``ConfigError`` naming the dotted field
(``"dpo.beta"``); ``to_dict`` gives back JSON that ``from_dict`` reads to an equal config.

Like ``config.py``, this module imports neither torch nor Django.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .config import (
    MAX_NEW_TOKENS,
    MAX_SEED,
    OptimConfig,
    PolicyConfig,
    _at_most,
    _check,
    _from_dict,
    _help,
    _one_of,
    _to_dict,
    field_help,
    is_cuda_index,
)
from .errors import ConfigError, finite_float

# TRL 1.16's DPOTrainer loss types, with its formulas (dpo_losses.py), less 'bco_pair': its reward
# shift is a running mean of every reward seen so far, state that a checkpoint would have to keep
# for a resumed run to repeat the uninterrupted one.
DPO_LOSS_TYPES = ("sigmoid", "ipo", "slic", "exo_pair", "nca_pair", "robust", "sppo_hard", "aot",
                  "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")
# The losses that read label_smoothing: 'sigmoid' as cDPO (Steer's; TRL 1.16's 'sigmoid' ignores it),
# and TRL's 'robust', 'exo_pair' (where it must be > 0), 'aot' and 'aot_unpaired'.
LABEL_SMOOTHING_LOSS_TYPES = ("sigmoid", "robust", "exo_pair", "aot", "aot_unpaired")
MAX_EPOCHS = 10_000
MAX_PAIRS_PER_BATCH = 65_536
MAX_ACCUMULATION = 1024


@dataclass(frozen=True)
class DPOSettings:
    """Direct Preference Optimization (Rafailov et al. 2023): the loss and the loop over pairs."""

    SECTION: ClassVar[str] = "dpo"
    beta: float = _help(
        "β: how far the policy may move from the reference (the initial policy); higher stays "
        "closer. For 'ipo' it is τ of the IPO paper.", default=0.1)
    loss_type: str | tuple[str, ...] = _help(
        "The loss, TRL 1.16's DPOTrainer's formulas (Δ = the chosen log-ratio − the rejected one): "
        "'sigmoid' (DPO, −log σ(β·Δ)), 'ipo' (IPO: (Δ/len − 1/(2β))², log-ratios averaged over each "
        "completion's tokens), 'slic' (SLiC's hinge loss, relu(1 − β·Δ): TRL's 'hinge'), 'exo_pair' (EXO, needs label_smoothing > 0, "
        "1e-3 in the paper), 'nca_pair', 'robust' (Robust DPO, label_smoothing its flip rate), 'sppo_hard', "
        "'aot' and 'aot_unpaired' (AOT: log-ratios sorted across each micro-batch), 'apo_zero', 'apo_down', "
        "'discopop' (see discopop_tau), 'sft' (the chosen completions' NLL, averaged over their tokens in "
        "each micro-batch) or 'sigmoid_norm' (DPO on log-ratios averaged over each completion's tokens). "
        "A list combines several, weighted by loss_weights, e.g. MPO's [\"sigmoid\", \"sft\"]. TRL's "
        "'bco_pair' is not offered: it shifts rewards by a running mean of every reward seen, state a "
        "resumed run would lose.", default="sigmoid")
    loss_weights: tuple[float, ...] | None = _help(
        "With a list of losses, each one's weight (numbers ≥ 0, one per loss, e.g. [1.0, 0.5]); the "
        "loss is Σ weight·loss. null weighs each 1, as TRL.", default=None)
    label_smoothing: float = _help(
        "In [0, 0.5). For 'sigmoid', cDPO: the assumed probability that a pair's label is flipped, the "
        "loss becoming −(1−ε)·log σ(β·Δ) − ε·log σ(−β·Δ) (0 is plain DPO). TRL's ε of 'robust', "
        "'exo_pair' (required there, > 0), 'aot' and 'aot_unpaired'; the other losses have none.",
        default=0.0)
    discopop_tau: float = _help(
        "τ of the 'discopop' loss (DiscoPOP, Chris Lu et al. 2024): the temperature of its blend of the "
        "logistic and exponential losses; the paper's 0.05. Read by 'discopop' only.", default=0.05)
    epochs: int = _help("Passes over the preference pairs.", default=1)
    batch_size: int = _help("Pairs per forward/backward (a micro-batch).", default=8)
    gradient_accumulation_steps: int = _help(
        "Micro-batches summed into one optimizer step: a step sees batch_size × this many pairs.",
        default=1)
    max_length: int = _help(
        "Tokens per prompt + completion; a longer completion is cut at the end, and a prompt "
        "that leaves no room keeps its last tokens.", default=1024)
    use_chat_template: bool = _help(
        "Put plain-text prompts through the tokenizer's chat template (chat prompts always are).",
        default=True)
    seed: int = _help("Seeds the order of the pairs in each epoch; a resumed run repeats exactly.",
                      default=0)
    checkpoint_every: int = _help("Save a checkpoint every N optimizer steps (and at the end or on stop).",
                                  default=50)
    keep_checkpoints: int = _help("How many recent checkpoints to keep (0 keeps all).", default=2)
    device: str = _help("'auto' (cuda if present), 'cpu', 'cuda' or 'cuda:N'.", default="auto")
    fast_path: bool = _help(
        "Log-probs through Steer's chunked LM head and packed forward where the model allows "
        "(the same values within rounding, less memory); false uses the plain Hugging Face path.",
        default=True)
    log_system_metrics: bool = _help(
        "Report the machine's state each step, as a policy run's train.log_system_metrics does: "
        "CPU, memory and, on a GPU, its memory and utilisation, charted under system/.",
        default=True)

    def __post_init__(self) -> None:
        s = self.SECTION
        _check(self.beta > 0, s, "beta", "must be > 0, e.g. 0.1")
        _check_loss_types(self)
        _check(0 <= self.label_smoothing < 0.5, s, "label_smoothing",
               "must be in [0, 0.5): the probability that a label is flipped, e.g. 0.1")
        losses = self.loss_types
        if self.label_smoothing and not set(losses) & set(LABEL_SMOOTHING_LOSS_TYPES):
            _check(False, s, "label_smoothing",
                   "is cDPO's flip probability for the 'sigmoid' loss only, and the ε of 'robust', 'exo_pair', "
                   f"'aot' and 'aot_unpaired' (as TRL): set it to 0 for {', '.join(map(repr, losses))}")
        _check(self.label_smoothing > 0 or "exo_pair" not in losses, s, "label_smoothing",
               "must be > 0 for the 'exo_pair' loss, whose target puts ε on the rejected answer (log ε); "
               "the EXO paper uses 1e-3")
        _check(self.discopop_tau > 0, s, "discopop_tau", "must be > 0, e.g. 0.05")
        check_loop_settings(self)

    @property
    def loss_types(self) -> tuple[str, ...]:
        """The losses combined: ``loss_type`` as a tuple (one name for a plain string)."""
        return (self.loss_type,) if isinstance(self.loss_type, str) else self.loss_type


def _check_loss_types(settings: DPOSettings) -> None:
    """``loss_type`` a known name or a non-empty list of them, ``loss_weights`` null or one finite
    number ≥ 0 per loss, not all 0; lists stored as tuples and weights as floats (so a config
    built in Python equals the one read from its JSON)."""
    s = settings.SECTION
    if isinstance(settings.loss_type, str):
        _check_loss_name(settings.loss_type, s, "loss_type")
    else:
        types = tuple(settings.loss_type)
        _check(len(types) > 0, s, "loss_type", "names no loss: give a name, e.g. 'sigmoid', or a list of them")
        for i, name in enumerate(types):
            _check_loss_name(name, s, f"loss_type[{i}]")
        object.__setattr__(settings, "loss_type", types)
    if settings.loss_weights is None:
        return
    weights = settings.loss_weights
    _check(isinstance(weights, (list, tuple)), s, "loss_weights", f"expected a list of numbers, got {weights!r}")
    count = len(settings.loss_types)
    _check(len(weights) == count, s, "loss_weights",
           f"gives {len(weights)} weight(s) for {count} loss(es): one weight per loss of loss_type, in its order")
    numbers = []
    for i, weight in enumerate(weights):
        where = f"{s}.loss_weights[{i}]"
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ConfigError(where, f"expected a number, got {weight!r}")
        number = finite_float(weight, where)
        _check(number >= 0, s, f"loss_weights[{i}]", f"must be >= 0, got {number}")
        numbers.append(number)
    _check(any(n > 0 for n in numbers), s, "loss_weights",
           "are all 0: nothing would be trained; give at least one loss a weight > 0")
    object.__setattr__(settings, "loss_weights", tuple(numbers))


def _check_loss_name(name: Any, section: str, field: str) -> None:
    _check(name != "hinge", section, field,
           "'hinge' is called 'slic' here: TRL's 'hinge', SLiC's hinge loss relu(1 − β·Δ), with TRL's formula "
           "(the name 'hinge' would say which of several hinge losses less plainly)")
    _check(name != "bco_pair", section, field,
           "'bco_pair' is not offered: TRL shifts its rewards by a running mean of every reward seen so far, "
           "state a resumed run would lose; 'nca_pair' or 'sigmoid' instead")
    _one_of(name, DPO_LOSS_TYPES, section, field)


def check_loop_settings(settings) -> None:
    """The checks of the loop settings the offline trainers (DPO, SFT) share: epochs,
    batch_size, gradient_accumulation_steps, max_length, seed, checkpoint_every,
    keep_checkpoints and device; ConfigError naming ``<SECTION>.<field>``."""
    s = settings.SECTION
    for name, limit in (("epochs", MAX_EPOCHS), ("batch_size", MAX_PAIRS_PER_BATCH),
                        ("gradient_accumulation_steps", MAX_ACCUMULATION)):
        _check(getattr(settings, name) >= 1, s, name, "must be at least 1")
        _at_most(getattr(settings, name), limit, s, name)
    _check(settings.max_length >= 2, s, "max_length", "must be at least 2 (a prompt token and a completion token)")
    _at_most(settings.max_length, MAX_NEW_TOKENS, s, "max_length")
    _check(0 <= settings.seed <= MAX_SEED, s, "seed", f"must be in [0, {MAX_SEED}] (2**32 - 1)")
    _check(settings.checkpoint_every >= 1, s, "checkpoint_every", "must be at least 1")
    _check(settings.keep_checkpoints >= 0, s, "keep_checkpoints", "must be >= 0 (0 keeps all)")
    _check(settings.device in ("auto", "cpu", "cuda") or is_cuda_index(settings.device), s,
           "device", f"{settings.device!r} is no device; use 'auto', 'cpu', 'cuda' or 'cuda:N' "
           "(N the GPU's number, 0 to 127, e.g. 'cuda:0')")


@dataclass(frozen=True)
class DPOTrainConfig:
    """A whole DPO run. Build from JSON with ``from_dict``; ``to_dict`` gives the JSON back."""

    policy: PolicyConfig = _help("The model trained; its initial weights are the reference.",  # noqa: RUF009
                                 default_factory=PolicyConfig)
    dpo: DPOSettings = _help("Loss and loop.", default_factory=DPOSettings)  # noqa: RUF009
    optim: OptimConfig = _help("Optimiser.", default_factory=OptimConfig)  # noqa: RUF009

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DPOTrainConfig:
        """Build and validate; raises ConfigError naming the dotted field on any problem."""
        return _from_dict(cls, d, "")

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


def dpo_field_help() -> dict[str, str]:
    """Dotted field name -> help text of the DPO config, for forms and docs."""
    return field_help(DPOTrainConfig)
