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

DPO_LOSS_TYPES = ("sigmoid", "ipo")
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
    loss_type: str = _help(
        "'sigmoid' (the DPO loss, −log σ(β·Δ)) or 'ipo' (IPO: (Δ/len − 1/(2β))², log-ratios "
        "averaged over each completion's tokens, as TRL does).", default="sigmoid")
    label_smoothing: float = _help(
        "cDPO: the assumed probability that a pair's label is flipped, in [0, 0.5); the sigmoid "
        "loss becomes −(1−ε)·log σ(β·Δ) − ε·log σ(−β·Δ). 0 is plain DPO; 'sigmoid' only.",
        default=0.0)
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
        _one_of(self.loss_type, DPO_LOSS_TYPES, s, "loss_type")
        _check(0 <= self.label_smoothing < 0.5, s, "label_smoothing",
               "must be in [0, 0.5): the probability that a label is flipped, e.g. 0.1")
        _check(self.label_smoothing == 0 or self.loss_type == "sigmoid", s, "label_smoothing",
               "applies to the 'sigmoid' loss only; set it to 0 for 'ipo'")
        check_loop_settings(self)


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
