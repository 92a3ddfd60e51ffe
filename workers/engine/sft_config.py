"""The typed config of an SFT run: the JSON an SFT Run stores, validated before any work starts.

Three sections, as a DPO run's: ``policy`` (the model trained, as in ``TrainConfig``),
``optim`` (AdamW, as in ``TrainConfig``, but with TRL's SFT learning rate, 2e-5, as its
default) and ``sft`` (the loop). ``SFTTrainConfig.from_dict``
refuses unknown keys and out-of-range values with a ``ConfigError`` naming the dotted field
(``"sft.epochs"``); ``to_dict`` gives back JSON that ``from_dict`` reads to an equal config.

Like ``config.py``, this module imports neither torch nor Django.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .config import OptimConfig, PolicyConfig, _from_dict, _help, _to_dict, field_help
from .dpo_config import check_loop_settings


@dataclass(frozen=True)
class SFTOptimConfig(OptimConfig):
    """AdamW as a policy run's, its default learning rate TRL's SFTConfig's."""

    lr: float = _help("Peak learning rate (2e-5, TRL's SFT default).", default=2e-5)


@dataclass(frozen=True)
class SFTSettings:
    """Supervised fine-tuning on (prompt, completion) examples, as TRL's SFTTrainer trains on
    prompt-completion data: the loss is on the completion's tokens only."""

    SECTION: ClassVar[str] = "sft"
    epochs: int = _help("Passes over the examples.", default=1)
    batch_size: int = _help("Examples per forward/backward (a micro-batch).", default=8)
    gradient_accumulation_steps: int = _help(
        "Micro-batches summed into one optimizer step: a step sees batch_size × this many examples, "
        "and its loss is the mean over all their completion tokens.", default=1)
    max_length: int = _help(
        "Tokens per prompt + completion; a longer completion is cut at the end, and a prompt "
        "that leaves no room keeps its last tokens.", default=1024)
    use_chat_template: bool = _help(
        "Put plain-text prompts through the tokenizer's chat template (chat prompts always are); the "
        "completion follows as the assistant's turn.", default=True)
    seed: int = _help("Seeds the order of the examples in each epoch; a resumed run repeats exactly.",
                      default=0)
    checkpoint_every: int = _help("Save a checkpoint every N optimizer steps (and at the end or on stop).",
                                  default=50)
    keep_checkpoints: int = _help("How many recent checkpoints to keep (0 keeps all).", default=2)
    device: str = _help("'auto' (cuda if present), 'cpu', 'cuda' or 'cuda:N'.", default="auto")
    log_system_metrics: bool = _help(
        "Report the machine's state each step, as a policy run's train.log_system_metrics does: "
        "CPU, memory and, on a GPU, its memory and utilisation, charted under system/.",
        default=True)

    def __post_init__(self) -> None:
        check_loop_settings(self)


@dataclass(frozen=True)
class SFTTrainConfig:
    """A whole SFT run. Build from JSON with ``from_dict``; ``to_dict`` gives the JSON back."""

    policy: PolicyConfig = _help("The model trained.", default_factory=PolicyConfig)  # noqa: RUF009
    sft: SFTSettings = _help("The loop.", default_factory=SFTSettings)  # noqa: RUF009
    optim: SFTOptimConfig = _help("Optimiser.", default_factory=SFTOptimConfig)  # noqa: RUF009

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SFTTrainConfig:
        """Build and validate; raises ConfigError naming the dotted field on any problem."""
        return _from_dict(cls, d, "")

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


def sft_field_help() -> dict[str, str]:
    """Dotted field name -> help text of the SFT config, for forms and docs."""
    return field_help(SFTTrainConfig)
