"""A Steer reward model as a Hugging Face sequence classifier, for tools outside Steer.

TRL, OpenRLHF and plain ``transformers`` code load reward models with
``AutoModelForSequenceClassification``; TRL's ``GRPOTrainer(reward_funcs="folder")`` does so
with ``num_labels=1``. Steer saves its own folder (``reward_model.py``: backbone + K heads), so
``export_sequence_classifier`` writes the same weights in that form:

* the backbone's weights under the classifier's base model, the K heads as its K outputs
  (``num_labels = K``; ``logits[:, k]`` is member k's reward);
* ``pad_token_id`` set, so the classifier reads the last non-pad token, as Steer's head does;
* the tokenizer, padding on the right and truncating on the left at the model's ``max_length``.

Only a ``causal_lm`` backbone has that form: ``minilm`` and ``tiny`` mean-pool, which no
``AutoModelForSequenceClassification`` does. Texts are formatted as Steer (and TRL) format
them: ``prompt + completion``, or the chat template over the prompt's messages and the
assistant's answer. Most classifiers' output layer has no bias (Llama, Qwen, Mistral, GPT-2):
Steer's heads' biases then cannot travel, the exported rewards are Steer's minus that constant
(the same for every input: no comparison, ranking or group-normalised advantage changes), and
``config.steer_reward_bias`` records it. After writing, the export loads the folder back and
checks its rewards against Steer's on a few texts.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import ConfigError, ModelLoadError
from .reward_model import RewardModelScorer, load_reward_model

CHECK_PROMPTS = ("2 + 2 =", [{"role": "user", "content": "Say hi."}], "Name a colour:")
CHECK_COMPLETIONS = (" 4", "Hi!", " a long answer, so that the texts of one batch differ in length")
CHECK_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportSummary:
    """What ``export_sequence_classifier`` wrote, for the CLI to print."""

    folder: str
    architecture: str
    num_labels: int
    dropped_bias: list[float] | None  # the heads' biases the classifier has no place for
    max_abs_difference: float  # exported vs Steer's rewards on the check texts, bias removed


def export_sequence_classifier(source: str | Path, destination: str | Path) -> ExportSummary:
    """Write the reward model saved in ``source`` as a sequence classifier in ``destination``.

    Raises ModelLoadError for a folder that is not a reward model, ConfigError for a backbone
    that has no sequence-classifier form or a destination that already holds files.
    """
    from transformers import AutoModelForSequenceClassification  # noqa: PLC0415

    destination = Path(destination)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise ConfigError("destination", f"{destination} already exists and is not an empty folder")
    scorer = load_reward_model(source, device="cpu")
    if scorer.backbone_kind != "causal_lm":
        raise ConfigError("source", f"{source} has a {scorer.backbone_kind!r} backbone, which mean-pools its "
                          "tokens; only a 'causal_lm' reward model has a sequence-classifier form")
    backbone = scorer.model.backbone
    config = _classifier_config(scorer)
    try:
        classifier = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
    except ValueError as exc:  # an architecture transformers has no classifier for
        raise ConfigError("source", f"transformers has no sequence classifier for {config.model_type!r}: {exc}") from None
    base = getattr(classifier, classifier.base_model_prefix)
    base.load_state_dict(backbone.state_dict())
    head = _output_layer(classifier, scorer.ensemble_size)
    heads = scorer.model.heads
    dropped = None
    with torch.no_grad():
        head.weight.copy_(heads.weight)
        if head.bias is not None:
            head.bias.copy_(heads.bias)
        elif bool(heads.bias.ne(0).any()):
            dropped = [float(b) for b in heads.bias]
    if dropped is not None:
        classifier.config.steer_reward_bias = dropped
    classifier.config.steer_max_length = scorer.max_length
    destination.mkdir(parents=True, exist_ok=True)
    try:
        classifier.save_pretrained(destination)
        tokenizer = scorer.tokenizer
        tokenizer.model_max_length = scorer.max_length
        tokenizer.save_pretrained(destination)
        difference = _check(destination, scorer, dropped)
    except BaseException:  # leave no classifier that was not checked (the folder was empty)
        shutil.rmtree(destination, ignore_errors=True)
        raise
    summary = ExportSummary(folder=str(destination), architecture=type(classifier).__name__,
                            num_labels=scorer.ensemble_size, dropped_bias=dropped, max_abs_difference=difference)
    return summary


def _classifier_config(scorer: RewardModelScorer):
    config = scorer.model.backbone.config.__class__.from_dict(scorer.model.backbone.config.to_dict())
    k = scorer.ensemble_size
    config.num_labels = k
    config.id2label = {i: f"member_{i}" for i in range(k)} if k > 1 else {0: "reward"}
    config.label2id = {name: i for i, name in config.id2label.items()}
    config.problem_type = "regression"
    config.pad_token_id = scorer.tokenizer.pad_token_id
    config.architectures = None
    return config


def _output_layer(classifier: nn.Module, outputs: int) -> nn.Linear:
    """The classifier's own output layer (``score`` for Llama-likes): its Linear to ``outputs``."""
    prefix = classifier.base_model_prefix
    for name, module in classifier.named_children():
        if name != prefix and isinstance(module, nn.Linear) and module.out_features == outputs:
            return module
    raise ConfigError("source", f"{type(classifier).__name__} has no linear output layer to hold the heads")


def _check(folder: Path, scorer: RewardModelScorer, dropped: list[float] | None) -> float:
    """Load the export as its users will and compare its rewards with Steer's on a few texts."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: PLC0415

    from .reward_model import _causal_text  # noqa: PLC0415 (the one formatting of a text)

    classifier = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True,
                                                                    dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    texts = [_causal_text(tokenizer, p, c) for p, c in zip(CHECK_PROMPTS, CHECK_COMPLETIONS)]
    encoded = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        exported = classifier(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits.T
    expected = scorer.score(list(CHECK_PROMPTS), list(CHECK_COMPLETIONS))
    if dropped is not None:
        expected = expected - torch.tensor(dropped).unsqueeze(1)
    difference = float((exported.float() - expected).abs().max())
    if not math.isfinite(difference) or difference > CHECK_TOLERANCE:
        raise ModelLoadError(f"the exported classifier in {folder} scores {difference:.3g} away from Steer's "
                             "reward model on the check texts; do not use it")
    return difference


def cli_main(argv: list[str]) -> int:
    """``python -m workers.engine export-rm-hf SOURCE DESTINATION``."""
    import argparse  # noqa: PLC0415

    from .cli_config import run_cli  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="python -m workers.engine export-rm-hf",
        description="Write a Steer reward model (causal_lm backbone) as a Hugging Face sequence classifier, "
                    "loadable with AutoModelForSequenceClassification (and by TRL as reward_funcs).")
    parser.add_argument("source", type=Path, help="the reward model's folder (as downloaded from Steer, untarred)")
    parser.add_argument("destination", type=Path, help="a new or empty folder to write the classifier to")
    args = parser.parse_args(argv)

    def run() -> int:
        print(json.dumps(asdict(export_sequence_classifier(args.source, args.destination)), indent=2))
        return 0

    return run_cli(run)
