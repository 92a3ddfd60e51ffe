"""Supervised fine-tuning of a policy on (prompt, completion) examples, as TRL's SFTTrainer
trains on prompt-completion data.

Reads top to bottom: ``completion_token_losses`` (a pure function of logits) → the examples
(``SFTExample``) → tokenised prompt + completion rows (the prompt as the rest of the engine
encodes it, chat prompts through the chat template with the generation prompt, the completion
after it as the assistant's turn, then EOS) → for each optimizer step: the step's examples in
micro-batches, the loss, one AdamW step → checkpoints every ``sft.checkpoint_every`` steps,
resumed from like DPO's.

The loss is TRL's default for prompt-completion data (``completion_only_loss``): the negative
log-likelihood of the completion tokens only (prompt tokens masked), averaged over every
completion token of the optimizer step (token-level: a long completion weighs more than a short
one, and accumulated micro-batches equal one big batch, as TRL's ``num_items_in_batch``).

Metrics handed to ``on_metrics(step, metrics)``, TRL's names: ``loss``, ``mean_token_accuracy``
(share of completion tokens that are the model's most likely next token, before the step),
``num_tokens`` (prompt + completion tokens trained on so far), ``grad_norm`` (before clipping),
``learning_rate``, ``epoch``. Step 1 adds ``data/examples``.

Dropout is off throughout (the model stays in eval mode), so a resumed run repeats the
uninterrupted one exactly.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .checkpoint import (
    latest_checkpoint,
    load_training_state,
    remove_partial_checkpoints,
)
from .errors import DataError, TrainingDiverged
from .policy import (
    check_policy_available,
    load_policy,
    load_policy_checkpoint,
    resolve_device,
)
from .prompt_completion import (
    encode_prompt_completions,
    epoch_at,
    offline_checkpoint,
    planned_steps,
    prompt_completion_batch,
    step_indices,
)
from .rollout import position_ids_from_mask
from .sft_config import SFTTrainConfig
from .stopping import StopCheck, StopRequested, check_stop, stoppable
from .system_metrics import progress_figures, start_cpu_window, system_metrics
from .update import (
    _zero_missing_grads,
    build_optimizer,
    learning_rate_at,
    training_attention,
)

# --- the loss ------------------------------------------------------------------------------


def completion_token_losses(
    logits: Tensor, targets: Tensor, mask: Tensor
) -> tuple[Tensor, Tensor]:
    """(negative log-likelihood of each target token (N, T), whether it is the argmax (N, T)),
    both 0 where ``mask`` is 0 (prompt, padding). logits (N, T, V): position t predicts
    ``targets[:, t]``; targets, mask (N, T)."""
    keep = mask.bool()
    nll = F.cross_entropy(
        logits.float().transpose(1, 2), targets, reduction="none"
    )  # (N, T)
    correct = (logits.argmax(dim=-1) == targets) & keep
    return torch.where(keep, nll, 0.0), correct


# --- the data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SFTExample:
    """A prompt (text or chat messages) and the completion to learn for it (the assistant's answer)."""

    prompt: str | list[dict]
    completion: str


def check_examples(examples: Sequence[SFTExample]) -> list[SFTExample]:
    """The examples, or DataError naming the first malformed one (or saying there are none)."""
    for index, example in enumerate(examples):
        prompt = example.prompt
        if not (
            isinstance(prompt, str)
            or isinstance(prompt, list)
            and all(isinstance(m, dict) for m in prompt)
        ):
            raise DataError(
                f"example {index}: prompt must be a string or a list of messages"
            )
        if not isinstance(example.completion, str) or not example.completion:
            raise DataError(f"example {index}: completion must be a non-empty string")
    if not examples:
        raise DataError("no examples to train on")
    return list(examples)


@dataclass(frozen=True)
class _Encoded:
    prompt: list[int]
    completion: list[int]

    @property
    def targets(self) -> int:
        """Completion tokens the loss counts: each one after a real token (an empty prompt's first has none)."""
        return len(self.completion) - (0 if self.prompt else 1)


def encode_examples(
    tokenizer,
    examples: Sequence[SFTExample],
    *,
    max_length: int,
    use_chat_template: bool,
) -> list[_Encoded]:
    """Token ids of each example: the prompt as the rest of the engine encodes it (chat prompts
    through the chat template), the completion after it followed by EOS, cut to ``max_length``
    (``prompt_completion.encode_prompt_completions``)."""
    rows = encode_prompt_completions(
        tokenizer,
        [e.prompt for e in examples],
        [(e.completion,) for e in examples],
        max_length=max_length,
        use_chat_template=use_chat_template,
    )
    return [_Encoded(prompt, completion) for prompt, (completion,) in rows]


def batch_token_losses(
    model, encoded: Sequence[_Encoded], pad_id: int, device
) -> tuple[Tensor, Tensor]:
    """(per-token NLL (B, T), argmax hits (B, T)) of a micro-batch's completions, 0 off the
    completion tokens: prompts left-padded, completions right-padded, the logits of the
    completion window only (``logits_to_keep``)."""
    input_ids, attention_mask, completion_mask = prompt_completion_batch(
        [e.prompt for e in encoded], [e.completion for e in encoded], pad_id, device
    )
    t = completion_mask.shape[1]
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        logits_to_keep=t + 1,
        use_cache=False,
    ).logits[:, :-1]  # (B, T, V): position i predicts i + 1
    # A completion token counts when a real token precedes it (the first one of an empty prompt has none).
    mask = completion_mask.bool() & attention_mask[:, -(t + 1) : -1].bool()
    return completion_token_losses(logits, input_ids[:, -t:], mask)


# --- the loop ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SFTResult:
    output_dir: Path
    steps_completed: int  # the last completed step (0 if none)
    total_steps: int
    stopped: bool  # should_stop ended the run early
    resumed_from: int  # step of the checkpoint resumed from (0 for a fresh run)
    final_checkpoint: Path | None
    metrics: dict[str, float]
    # (step, system/* metrics) of each step this run took, with log_system_metrics on; apart
    # from the step metrics, which a resumed run repeats, as the machine's state is not
    system_history: list[tuple[int, dict[str, float]]] = field(default_factory=list)


def planned_sft_steps(num_examples: int, config: SFTTrainConfig) -> int:
    """Optimizer steps of a run on ``num_examples``: every epoch ends with a (possibly smaller) step."""
    s = config.sft
    return planned_steps(
        num_examples,
        batch_size=s.batch_size,
        accumulation=s.gradient_accumulation_steps,
        epochs=s.epochs,
    )


def step_examples(
    step: int, num_examples: int, config: SFTTrainConfig
) -> list[list[int]]:
    """The example indices of optimizer step ``step`` (from 1), as micro-batches (seeded by ``sft.seed``)."""
    s = config.sft
    return step_indices(
        step,
        num_examples,
        batch_size=s.batch_size,
        accumulation=s.gradient_accumulation_steps,
        seed=s.seed,
    )


def train_sft(
    config: SFTTrainConfig,
    examples: Sequence[SFTExample],
    *,
    output_dir: Path,
    on_metrics: Callable[[int, dict], None] | None = None,
    on_checkpoint: Callable[[int, Path], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    model_cache_dir: Path | None = None,
    on_system_metrics: Callable[[int, dict], None] | None = None,
) -> SFTResult:
    """Fine-tune ``config.policy`` on ``examples``; resumes from the latest checkpoint in
    ``output_dir/checkpoints``. Checks the data and the model before any work (DataError,
    ModelLoadError); ``should_stop()`` is asked before each step and polled between a step's
    micro-batches (at most once a second): a step stopped there is abandoned before its
    optimizer step, and a stopped run saves a checkpoint of the steps it took. Raises
    TrainingDiverged when the loss is not a number.
    ``on_system_metrics(step, metrics)`` hears the machine's state (``system_metrics.py``) each
    step, before ``on_metrics``, unless ``sft.log_system_metrics`` is false; the result's
    ``system_history`` keeps them."""
    examples = check_examples(examples)
    check_policy_available(config.policy)
    s = config.sft
    device = resolve_device(s.device)
    output_dir = Path(output_dir)
    remove_partial_checkpoints(output_dir)
    found = latest_checkpoint(output_dir)
    if found is None:
        random.seed(s.seed)
        np.random.seed(s.seed)
        torch.manual_seed(s.seed)
        model, tokenizer = load_policy(
            config.policy, cache_dir=model_cache_dir, device=device
        )
    else:
        model, tokenizer = load_policy_checkpoint(
            found[1], config.policy, device=device
        )
    model.eval()
    encoded = encode_examples(
        tokenizer,
        examples,
        max_length=s.max_length,
        use_chat_template=s.use_chat_template,
    )
    optimizer = build_optimizer(model, config.optim)
    start = load_training_state(found[1], optimizer)["step"] if found is not None else 0

    total = planned_sft_steps(len(encoded), config)
    steps_per_epoch = total // s.epochs
    seen = sum(
        len(encoded[i].prompt)
        + len(encoded[i].completion)  # tokens trained on before a resumed step
        for step in range(1, start + 1)
        for ids in step_examples(step, len(encoded), config)
        for i in ids
    )
    step, last_saved, stopped, final, metrics = start, start, False, None, {}
    system_each_step, system_history = s.log_system_metrics, []
    if system_each_step:
        start_cpu_window()
    stop = StopCheck(should_stop)
    for step in range(start + 1, total + 1):
        if stop():
            stopped, step = True, step - 1
            break
        micro_batches = step_examples(step, len(encoded), config)
        lr = learning_rate_at(step, config.optim)
        try:
            with stoppable(stop):
                metrics = _sft_step(
                    model,
                    optimizer,
                    config,
                    encoded,
                    micro_batches,
                    lr,
                    tokenizer.pad_token_id,
                    device,
                )
        except (
            StopRequested
        ):  # between micro-batches: the weights are still the previous step's
            optimizer.zero_grad(set_to_none=True)
            stopped, step = True, step - 1
            break
        if not math.isfinite(metrics["loss"]):
            raise TrainingDiverged(
                f"training diverged at step {step}: the loss is {metrics['loss']}; lower optim.lr"
            )
        seen += sum(
            len(encoded[i].prompt) + len(encoded[i].completion)
            for ids in micro_batches
            for i in ids
        )
        metrics.update(
            {"num_tokens": float(seen), "epoch": epoch_at(step, steps_per_epoch)}
        )
        if step == 1:
            metrics["data/examples"] = len(encoded)
        if system_each_step and (
            system := system_metrics(device)
        ):  # before the step's own, as train's
            system_history.append((step, system))
            if on_system_metrics is not None:
                on_system_metrics(step, dict(system))
        if on_metrics is not None:
            on_metrics(step, dict(metrics))
        if step % s.checkpoint_every == 0 or step == total:
            final, last_saved = (
                _checkpoint(
                    config,
                    model,
                    tokenizer,
                    optimizer,
                    output_dir,
                    step,
                    total,
                    on_checkpoint,
                ),
                step,
            )
    if step > last_saved:  # stopped between checkpoints: keep what was trained
        final = _checkpoint(
            config, model, tokenizer, optimizer, output_dir, step, total, on_checkpoint
        )
    elif final is None and step:
        found = latest_checkpoint(output_dir)
        final = found[1] if found else None
    return SFTResult(
        output_dir, step, total, stopped, start, final, metrics, system_history
    )


def _sft_step(
    model,
    optimizer,
    config: SFTTrainConfig,
    encoded: Sequence[_Encoded],
    micro_batches: list[list[int]],
    lr: float,
    pad_id: int,
    device: str,
) -> dict[str, float]:
    """One AdamW step over the micro-batches: each token's NLL weighted 1 / completion tokens in
    the whole step, so accumulation equals one big batch (TRL's token-level mean)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    num_targets = sum(encoded[i].targets for ids in micro_batches for i in ids)
    nll_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct_sum = torch.zeros((), dtype=torch.float64, device=device)
    optimizer.zero_grad(set_to_none=True)
    with training_attention(torch.device(device)):
        for ids in micro_batches:
            check_stop()
            nll, correct = batch_token_losses(
                model, [encoded[i] for i in ids], pad_id, device
            )
            (nll.sum() / max(num_targets, 1)).backward()
            nll_sum += nll.detach().sum(dtype=torch.float64)
            correct_sum += correct.sum(dtype=torch.float64)
    _zero_missing_grads(model)
    max_norm = (
        config.optim.max_grad_norm if config.optim.max_grad_norm > 0 else math.inf
    )
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm).item()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    loss, hits = torch.stack([nll_sum, correct_sum]).tolist()
    denominator = max(num_targets, 1)
    return {
        "loss": loss / denominator,
        "mean_token_accuracy": hits / denominator,
        "grad_norm": grad_norm,
        "learning_rate": lr,
    }


def _checkpoint(
    config: SFTTrainConfig,
    model,
    tokenizer,
    optimizer,
    output_dir: Path,
    step: int,
    total: int,
    on_checkpoint: Callable[[int, Path], None] | None,
) -> Path:
    return offline_checkpoint(
        config,
        model,
        tokenizer,
        optimizer,
        output_dir,
        step,
        total,
        kind="sft",
        keep=config.sft.keep_checkpoints,
        on_checkpoint=on_checkpoint,
    )


# --- the command line ----------------------------------------------------------------------


def _last_turn_as_completion(messages, where: str) -> dict:
    """``{"messages": [...]}`` (TRL's conversational format) as prompt + completion: the messages
    before the last are the prompt, the last, the assistant's, is the completion learnt (earlier
    assistant turns are context, not trained on)."""
    if not (
        isinstance(messages, list)
        and len(messages) >= 2
        and all(isinstance(m, dict) for m in messages)
    ):
        raise DataError(
            f"{where}: messages must be a list of at least two messages, the last the assistant's"
        )
    if messages[-1].get("role") != "assistant":
        raise DataError(
            f"{where}: the last of the messages must be the assistant's answer to learn "
            f"(it is {messages[-1].get('role')!r})"
        )
    return {"prompt": messages[:-1], "completion": messages[-1].get("content")}


def load_sft_examples(path: Path) -> tuple[list[SFTExample], int]:
    """(the examples of a JSONL file, how many tied pairs were skipped). A line is TRL's
    prompt-completion format, ``{"prompt", "completion"}`` (the prompt a string or chat messages,
    the completion a string or the assistant's messages), TRL's conversational ``{"messages"}``
    whose last message, the assistant's, is the completion, or a preference pair ``{"prompt",
    "chosen", "rejected"}`` whose chosen answer is the completion (a pair marked ``"tie": true``
    prefers neither and is skipped). DataError naming the file and line of the first bad one."""
    from .cli_config import assistant_text, jsonl_objects

    examples, ties = [], 0
    for number, row in jsonl_objects(path, "examples"):
        if (
            "messages" in row and "prompt" not in row
        ):  # TRL's conversational format: the last turn is learnt
            row = _last_turn_as_completion(row["messages"], f"{path}:{number}")
        if "completion" in row:
            completion = row["completion"]
        elif "chosen" in row and "rejected" in row:
            if row.get("tie") is True:
                ties += 1
                continue
            completion = row["chosen"]
        else:
            raise DataError(
                f"{path}:{number}: needs prompt + completion, messages, or prompt + chosen + rejected"
            )
        prompt = row.get("prompt")
        if not (
            isinstance(prompt, str)
            or isinstance(prompt, list)
            and prompt
            and all(
                isinstance(m, dict)
                and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str)
                for m in prompt
            )
        ):
            raise DataError(
                f"{path}:{number}: prompt must be a string or a list of "
                '{"role": …, "content": …} messages'
            )
        completion = assistant_text(completion)
        if not isinstance(completion, str) or not completion:
            raise DataError(
                f"{path}:{number}: the completion must be a non-empty string or the assistant's "
                'messages ([{"role": "assistant", "content": …}])'
            )
        examples.append(SFTExample(prompt, completion))
    if not examples:
        raise DataError(
            f"{path}: no examples to train on"
            + (f" ({ties} tied pair(s) skipped)" if ties else "")
        )
    return examples, ties


def cli_main(argv: list[str], *, environ: Mapping[str, str]) -> int:
    """``python -m workers.engine train-sft --config cfg.json --output-dir out/``.

    The config JSON holds the ``SFTTrainConfig`` sections (``policy``, ``sft``, ``optim``) and
    ``"data": {"path": …}``: JSONL of TRL's ``{"prompt", "completion"}`` or ``{"messages"}``, or of preference pairs
    ``{"prompt", "chosen", "rejected"}`` (the chosen answer is learnt; a relative path is read from
    the config file's folder). A run into an output folder that holds checkpoints resumes from
    the latest. A built-in policy is converted from GGUF once into ``--model-cache-dir`` (else the
    folder ``environ`` names, ``cli_config.model_cache_dir``) and read from there after. Exit codes: 0 done, 2 a bad config, data or model (one line on stderr), 130
    interrupted.
    """
    import argparse

    from tqdm import tqdm

    from .cli_config import (
        add_model_cache_dir_option,
        model_cache_dir,
        read_cli_config,
        run_cli,
    )

    parser = argparse.ArgumentParser(
        prog="python -m workers.engine train-sft",
        description="Supervised fine-tuning of a policy on prompt-completion examples (TRL's SFTTrainer's "
        "format; the loss is on the completion's tokens only).",
        epilog='The config file: {"policy": {...}, "sft": {...}, "optim": {...}, "data": {"path": "sft.jsonl"}}; '
        'each line of the data file is {"prompt": ..., "completion": ...}, {"messages": [...]} (the '
        'last, the assistant\'s, is the completion) or {"prompt": ..., "chosen": ..., "rejected": ...} '
        "(the chosen answer is the completion).",
    )
    parser.add_argument(
        "--config", required=True, type=Path, help="JSON: SFT config + data.path"
    )
    parser.add_argument(
        "--output-dir",
        required=True,
        type=Path,
        help="folder of the run's checkpoints (a run into it again resumes from the latest)",
    )
    add_model_cache_dir_option(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    shown = ("loss", "mean_token_accuracy")

    def train() -> int:
        fields, data_path = read_cli_config(args.config, example="examples.jsonl")
        config = SFTTrainConfig.from_dict(fields)
        examples, ties = load_sft_examples(data_path)
        progress = tqdm(
            total=planned_sft_steps(len(examples), config),
            desc="train-sft",
            unit="step",
        )
        system: dict[
            int, dict[str, str]
        ] = {}  # a step's system figures, heard before its metrics

        def on_metrics(step: int, metrics: dict) -> None:
            progress.update(step - progress.n)
            progress.set_postfix(
                {
                    **{k[:8]: f"{metrics[k]:.3f}" for k in shown if k in metrics},
                    **system.pop(step, {}),
                }
            )

        def on_system_metrics(step: int, metrics: dict) -> None:
            system[step] = progress_figures(metrics)

        with progress:
            result = train_sft(
                config,
                examples,
                output_dir=args.output_dir,
                model_cache_dir=model_cache_dir(args.model_cache_dir, environ),
                on_metrics=on_metrics,
                on_system_metrics=on_system_metrics,
            )
        final = {k: round(v, 4) for k, v in result.metrics.items() if k in shown}
        print(
            f"saved the policy to {result.final_checkpoint} after {result.steps_completed} steps on "
            f"{len(examples)} examples ({ties} tied pair(s) skipped) {json.dumps(final)}"
        )
        return 0

    return run_cli(train)
