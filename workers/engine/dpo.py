"""Direct Preference Optimization (Rafailov et al. 2023) of a policy on preference pairs.

Reads top to bottom: ``dpo_loss`` (``dpo_losses.py``: pure functions of summed log-probs) → the pairs
(``PreferencePair``; ties skipped) → tokenised prompt + completion rows → reference
log-probs, computed once with the frozen initial policy before any step and kept on disk
(``reference_logps.pt``), so no second model is held while training → for each optimizer
step: the step's pairs in micro-batches, the loss, one AdamW step → checkpoints every
``dpo.checkpoint_every`` steps, resumed from like the policy trainer's.

Metrics handed to ``on_metrics(step, metrics)``, TRL's names, means over the step's pairs:
``rewards/chosen`` and ``rewards/rejected`` (β·(log π − log π_ref) of each side),
``rewards/accuracies`` (share of pairs whose chosen reward is the higher),
``rewards/margins`` (chosen − rejected reward), ``logps/chosen``, ``logps/rejected``
(summed completion log-probs under the policy, before the step), ``loss``, ``grad_norm``
(before clipping), ``learning_rate``, ``epoch``. Step 1 adds ``data/pairs`` (pairs trained on)
and ``data/skipped_ties`` (pairs left out as ties).

Dropout is off throughout (the model stays in eval mode), as TRL's ``disable_dropout``:
the policy's log-probs and the reference's are then the same function at step 0.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .checkpoint import (
    latest_checkpoint,
    load_training_state,
    remove_partial_checkpoints,
)
from .dpo_config import DPOTrainConfig
from .dpo_losses import DPOLoss, dpo_loss  # noqa: F401 (DPOLoss: re-exported, as before the split)
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
from .stopping import StopCheck, StopRequested, check_stop, stoppable
from .system_metrics import progress_figures, start_cpu_window, system_metrics
from .update import (
    _logprobs_fn,
    _zero_missing_grads,
    build_optimizer,
    learning_rate_at,
    training_attention,
)

REFERENCE_FILE = "reference_logps.pt"


# --- the loss: dpo_losses.py -------------------------------------------------------------

# --- the data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreferencePair:
    """A prompt (text or chat messages) and two answers, ``chosen`` preferred to ``rejected``."""

    prompt: str | list[dict]
    chosen: str
    rejected: str


def usable_pairs(pairs: Sequence[PreferencePair]) -> tuple[list[PreferencePair], int]:
    """(the pairs to train on, how many ties were skipped). A tie (the two answers the same
    text) prefers neither and gives DPO nothing to learn: it is left out. DataError for a
    malformed pair or when nothing is left."""
    kept, ties = [], 0
    for index, pair in enumerate(pairs):
        prompt = pair.prompt
        if not (
            isinstance(prompt, str)
            or isinstance(prompt, list)
            and all(isinstance(m, dict) for m in prompt)
        ):
            raise DataError(
                f"pair {index}: prompt must be a string or a list of messages"
            )
        if not (isinstance(pair.chosen, str) and isinstance(pair.rejected, str)):
            raise DataError(f"pair {index}: chosen and rejected must be strings")
        if not pair.chosen or not pair.rejected:
            raise DataError(f"pair {index}: chosen and rejected must not be empty")
        if pair.chosen == pair.rejected:
            ties += 1
            continue
        kept.append(pair)
    if not kept:
        raise DataError(
            f"no preference pairs to train on ({ties} tie(s) skipped)"
            if ties
            else "no preference pairs to train on"
        )
    return kept, ties


@dataclass(frozen=True)
class _Encoded:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]


def encode_pairs(
    tokenizer,
    pairs: Sequence[PreferencePair],
    *,
    max_length: int,
    use_chat_template: bool,
) -> list[_Encoded]:
    """Token ids of each pair: the prompt as the rest of the engine encodes it (chat prompts
    through the chat template), each completion followed by EOS. A completion is cut at its end
    to fit ``max_length`` with its prompt; a prompt too long to leave a completion token keeps
    its last ``max_length − 1`` tokens (``prompt_completion.encode_prompt_completions``)."""
    rows = encode_prompt_completions(
        tokenizer,
        [p.prompt for p in pairs],
        [(p.chosen, p.rejected) for p in pairs],
        max_length=max_length,
        use_chat_template=use_chat_template,
    )
    return [_Encoded(prompt, chosen, rejected) for prompt, (chosen, rejected) in rows]


def _collate(
    encoded: Sequence[_Encoded], pad_id: int, device
) -> tuple[Tensor, Tensor, Tensor]:
    """Rows [chosen…, rejected…]: input_ids, attention_mask (2B, P + T), prompts left-padded and
    completions right-padded; completion_mask (2B, T)."""
    return prompt_completion_batch(
        [e.prompt for e in encoded] * 2,
        [e.chosen for e in encoded] + [e.rejected for e in encoded],
        pad_id,
        device,
    )


def sequence_logps(
    model, encoded: Sequence[_Encoded], pad_id: int, device, *, fast: bool
) -> tuple[Tensor, Tensor]:
    """(summed completion log-probs (2B,), completion token counts (2B,)), rows [chosen…,
    rejected…], with the engine's per-token log-prob code (``update._logprobs_fn``)."""
    input_ids, attention_mask, completion_mask = _collate(encoded, pad_id, device)
    logprobs, _ = _logprobs_fn(model, fast)(
        model,
        input_ids,
        attention_mask,
        completion_mask.shape[1],
        1.0,
        completion_mask=completion_mask,
    )  # (2B, T)
    mask = completion_mask.to(logprobs.dtype)
    return (logprobs * mask).sum(dim=1), mask.sum(dim=1)


@torch.no_grad()
def reference_logps(
    model,
    encoded: Sequence[_Encoded],
    pad_id: int,
    device,
    *,
    batch_size: int,
    fast: bool,
) -> Tensor:
    """(N, 2) summed log-probs of each pair's (chosen, rejected) under ``model`` (the frozen
    initial policy)."""
    parts = []
    for start in range(0, len(encoded), batch_size):
        check_stop()
        chunk = encoded[start : start + batch_size]
        logps, _ = sequence_logps(model, chunk, pad_id, device, fast=fast)
        parts.append(torch.stack(logps.float().cpu().chunk(2), dim=1))
    return torch.cat(parts)


def pairs_fingerprint(pairs: Sequence[PreferencePair], config: DPOTrainConfig) -> str:
    """What the reference log-probs depend on: the pairs, the initial policy and the encoding."""
    digest = hashlib.sha256()
    settings = {
        "policy": config.to_dict()["policy"],
        "max_length": config.dpo.max_length,
        "use_chat_template": config.dpo.use_chat_template,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for pair in pairs:
        digest.update(
            json.dumps(
                [pair.prompt, pair.chosen, pair.rejected], sort_keys=True
            ).encode()
        )
    return digest.hexdigest()


# --- the loop ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DPOResult:
    output_dir: Path
    steps_completed: int  # the last completed step (0 if none)
    total_steps: int
    stopped: bool  # should_stop ended the run early
    resumed_from: int  # step of the checkpoint resumed from (0 for a fresh run)
    final_checkpoint: Path | None
    skipped_ties: int
    metrics: dict[str, float]
    # (step, system/* metrics) of each step this run took, with log_system_metrics on; apart
    # from the step metrics, which a resumed run repeats, as the machine's state is not
    system_history: list[tuple[int, dict[str, float]]] = field(default_factory=list)


def planned_dpo_steps(num_pairs: int, config: DPOTrainConfig) -> int:
    """Optimizer steps of a run on ``num_pairs`` pairs: every epoch ends with a (possibly smaller) step."""
    d = config.dpo
    return planned_steps(
        num_pairs,
        batch_size=d.batch_size,
        accumulation=d.gradient_accumulation_steps,
        epochs=d.epochs,
    )


def step_pairs(step: int, num_pairs: int, config: DPOTrainConfig) -> list[list[int]]:
    """The pair indices of optimizer step ``step`` (from 1), as micro-batches: each epoch walks
    a permutation seeded by ``seed + epoch``, so a resumed run takes the same pairs."""
    d = config.dpo
    return step_indices(
        step,
        num_pairs,
        batch_size=d.batch_size,
        accumulation=d.gradient_accumulation_steps,
        seed=d.seed,
    )


def train_dpo(
    config: DPOTrainConfig,
    pairs: Sequence[PreferencePair],
    *,
    output_dir: Path,
    on_metrics: Callable[[int, dict], None] | None = None,
    on_checkpoint: Callable[[int, Path], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    model_cache_dir: Path | None = None,
    on_system_metrics: Callable[[int, dict], None] | None = None,
) -> DPOResult:
    """Train ``config.policy`` with DPO on ``pairs``; resumes from the latest checkpoint in
    ``output_dir/checkpoints``. Checks the data and the model before any work (DataError,
    ModelLoadError); ``should_stop()`` is asked before each step and polled (at most once a
    second) between the reference pass's batches and a step's micro-batches: a step stopped
    there is abandoned before its optimizer step, and a stopped run saves a checkpoint of the
    steps it took. Raises TrainingDiverged when the loss is not a number.
    ``on_system_metrics(step, metrics)`` hears the machine's state (``system_metrics.py``) each
    step, before ``on_metrics``, unless ``dpo.log_system_metrics`` is false; the result's
    ``system_history`` keeps them."""
    pairs, ties = usable_pairs(pairs)
    check_policy_available(config.policy)
    d = config.dpo
    device = resolve_device(d.device)
    output_dir = Path(output_dir)
    remove_partial_checkpoints(output_dir)
    found = latest_checkpoint(output_dir)
    if found is None:
        random.seed(d.seed)
        np.random.seed(d.seed)
        torch.manual_seed(d.seed)
        model, tokenizer = load_policy(
            config.policy, cache_dir=model_cache_dir, device=device
        )
    else:
        model, tokenizer = load_policy_checkpoint(
            found[1], config.policy, device=device
        )
    model.eval()
    encoded = encode_pairs(
        tokenizer, pairs, max_length=d.max_length, use_chat_template=d.use_chat_template
    )
    total = planned_dpo_steps(len(pairs), config)
    stop = StopCheck(should_stop)
    try:
        with stoppable(stop):
            ref = _reference(
                config,
                pairs,
                encoded,
                output_dir,
                model if found is None else None,
                tokenizer.pad_token_id,
                device,
                model_cache_dir,
            )
    except StopRequested:  # before any step of this attempt: nothing new to save
        done = found[0] if found is not None else 0
        return DPOResult(
            output_dir,
            done,
            total,
            True,
            done,
            found[1] if found is not None else None,
            ties,
            {},
        )
    optimizer = build_optimizer(model, config.optim, fast=d.fast_path)
    start = load_training_state(found[1], optimizer)["step"] if found is not None else 0

    steps_per_epoch = total // d.epochs
    step, last_saved, stopped, final, metrics = start, start, False, None, {}
    system_each_step, system_history = d.log_system_metrics, []
    if system_each_step:
        start_cpu_window()
    for step in range(start + 1, total + 1):
        if stop():
            stopped, step = True, step - 1
            break
        micro_batches = step_pairs(step, len(pairs), config)
        lr = learning_rate_at(step, config.optim)
        try:
            with stoppable(stop):
                metrics = _dpo_step(
                    model,
                    optimizer,
                    config,
                    encoded,
                    ref,
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
                f"training diverged at step {step}: the loss is {metrics['loss']}; lower "
                "optim.lr or raise dpo.beta"
            )
        metrics["epoch"] = epoch_at(step, steps_per_epoch)
        if step == 1:
            metrics.update({"data/pairs": len(pairs), "data/skipped_ties": ties})
        if system_each_step and (
            system := system_metrics(device)
        ):  # before the step's own, as train's
            system_history.append((step, system))
            if on_system_metrics is not None:
                on_system_metrics(step, dict(system))
        if on_metrics is not None:
            on_metrics(step, dict(metrics))
        if step % d.checkpoint_every == 0 or step == total:
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
    return DPOResult(
        output_dir, step, total, stopped, start, final, ties, metrics, system_history
    )


def _reference(
    config: DPOTrainConfig,
    pairs: Sequence[PreferencePair],
    encoded: Sequence[_Encoded],
    output_dir: Path,
    initial_model,
    pad_id: int,
    device: str,
    model_cache_dir: Path | None,
) -> Tensor:
    """(N, 2) reference log-probs: computed with ``initial_model`` on a fresh start and saved;
    read back on a resume. A resume that finds none for these pairs loads the initial policy
    for as long as it takes to compute them."""
    path = output_dir / REFERENCE_FILE
    fingerprint = pairs_fingerprint(pairs, config)
    if initial_model is None and path.is_file():
        saved = torch.load(path, weights_only=True)
        if saved.get("fingerprint") == fingerprint:
            return saved["logps"]
    model = initial_model
    if model is None:
        model, _ = load_policy(config.policy, cache_dir=model_cache_dir, device=device)
        model.eval()
    with training_attention(torch.device(device)):
        logps = reference_logps(
            model,
            encoded,
            pad_id,
            device,
            batch_size=config.dpo.batch_size,
            fast=config.dpo.fast_path,
        )
    del model
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = output_dir / f".{REFERENCE_FILE}.{os.getpid()}"
    torch.save({"fingerprint": fingerprint, "logps": logps}, tmp)
    os.replace(tmp, path)
    return logps


def _dpo_step(
    model,
    optimizer,
    config: DPOTrainConfig,
    encoded: Sequence[_Encoded],
    ref: Tensor,
    micro_batches: list[list[int]],
    lr: float,
    pad_id: int,
    device: str,
) -> dict[str, float]:
    """One AdamW step over the micro-batches (the loss of each pair weighted 1 / pairs in the
    step, so accumulation equals one big batch); returns the step's metrics."""
    d = config.dpo
    for group in optimizer.param_groups:
        group["lr"] = lr
    num_pairs = sum(len(ids) for ids in micro_batches)
    # Sums stay on the device and are read once at the end (a read per micro-batch would make the
    # host wait for the GPU before it could queue the next micro-batch's kernels).
    sums = {
        key: torch.zeros((), dtype=torch.float64, device=device)
        for key in (
            "loss",
            "rewards/chosen",
            "rewards/rejected",
            "rewards/accuracies",
            "rewards/margins",
            "logps/chosen",
            "logps/rejected",
        )
    }
    optimizer.zero_grad(set_to_none=True)
    with training_attention(torch.device(device)):
        for ids in micro_batches:
            check_stop()
            logps, lengths = sequence_logps(
                model, [encoded[i] for i in ids], pad_id, device, fast=d.fast_path
            )
            chosen, rejected = logps.float().chunk(2)  # (b,), (b,)
            chosen_len, rejected_len = lengths.chunk(2)
            pair_ref = ref[ids].to(chosen.device)  # (b, 2)
            out = dpo_loss(
                chosen,
                rejected,
                pair_ref[:, 0],
                pair_ref[:, 1],
                beta=d.beta,
                loss_type=d.loss_type,
                label_smoothing=d.label_smoothing,
                chosen_lengths=chosen_len,
                rejected_lengths=rejected_len,
                loss_weights=d.loss_weights,
                discopop_tau=d.discopop_tau,
            )
            (out.losses.sum() / num_pairs).backward()
            for key, values in (
                ("loss", out.losses.detach()),
                ("rewards/chosen", out.chosen_rewards),
                ("rewards/rejected", out.rejected_rewards),
                (
                    "rewards/accuracies",
                    (out.chosen_rewards > out.rejected_rewards).float(),
                ),
                ("rewards/margins", out.chosen_rewards - out.rejected_rewards),
                ("logps/chosen", chosen.detach()),
                ("logps/rejected", rejected.detach()),
            ):
                sums[key] += values.sum(dtype=torch.float64)
    _zero_missing_grads(model)
    max_norm = (
        config.optim.max_grad_norm if config.optim.max_grad_norm > 0 else math.inf
    )
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm).item()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    metrics = {
        key: value / num_pairs
        for key, value in zip(sums, torch.stack(list(sums.values())).tolist())
    }
    metrics.update({"grad_norm": grad_norm, "learning_rate": lr})
    return metrics


def _checkpoint(
    config: DPOTrainConfig,
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
        kind="dpo",
        keep=config.dpo.keep_checkpoints,
        on_checkpoint=on_checkpoint,
    )


# --- the command line ----------------------------------------------------------------------


def pairs_from_preferences(records) -> list[PreferencePair]:
    """The pairs of preference records (``rm_trainer.PreferenceRecord``): each completion of a
    tier above each completion of every tier below, the better one chosen (a tie gives none)."""
    pairs = []
    for record in records:
        for i, upper in enumerate(record.ranking):
            for lower in record.ranking[i + 1 :]:
                pairs += [
                    PreferencePair(
                        record.prompt, record.completions[a], record.completions[b]
                    )
                    for a in upper
                    for b in lower
                ]
    return pairs


def cli_main(argv: list[str], *, environ: Mapping[str, str]) -> int:
    """``python -m workers.engine train-dpo --config cfg.json --output-dir out/``.

    The config JSON holds the ``DPOTrainConfig`` sections (``policy``, ``dpo``, ``optim``) and
    ``"data": {"path": …}``: JSONL of TRL's ``{"prompt", "chosen", "rejected"}`` or of
    ``{"prompt", "completions", "ranking"}`` (as ``train-rm`` reads them; a relative path is read
    from the config file's folder). A run into an output folder that holds checkpoints resumes
    from the latest. A built-in policy is converted from GGUF once into ``--model-cache-dir`` (else
    the folder ``environ`` names, ``cli_config.model_cache_dir``) and read from there after. Exit codes: 0 done, 2 a bad config, data or model (one line on stderr),
    130 interrupted.
    """
    import argparse

    from tqdm import tqdm

    from .cli_config import (
        add_model_cache_dir_option,
        model_cache_dir,
        read_cli_config,
        run_cli,
    )
    from .rm_trainer import load_preferences

    parser = argparse.ArgumentParser(
        prog="python -m workers.engine train-dpo",
        description="Train a policy with DPO on preference pairs.",
    )
    parser.add_argument(
        "--config", required=True, type=Path, help="JSON: DPO config + data.path"
    )
    parser.add_argument(
        "--output-dir", required=True, type=Path, help="folder of the run's checkpoints"
    )
    add_model_cache_dir_option(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    shown = ("loss", "rewards/accuracies", "rewards/margins")

    def train() -> int:
        fields, data_path = read_cli_config(args.config)
        config = DPOTrainConfig.from_dict(fields)
        pairs = pairs_from_preferences(load_preferences(data_path))
        progress = tqdm(
            total=planned_dpo_steps(len(usable_pairs(pairs)[0]), config),
            desc="train-dpo",
            unit="step",
        )
        system: dict[
            int, dict[str, str]
        ] = {}  # a step's system figures, heard before its metrics

        def on_metrics(step: int, metrics: dict) -> None:
            progress.update(step - progress.n)
            progress.set_postfix(
                {
                    **{
                        k.split("/")[-1][:6]: f"{metrics[k]:.3f}"
                        for k in shown
                        if k in metrics
                    },
                    **system.pop(step, {}),
                }
            )

        def on_system_metrics(step: int, metrics: dict) -> None:
            system[step] = progress_figures(metrics)

        with progress:
            result = train_dpo(
                config,
                pairs,
                output_dir=args.output_dir,
                model_cache_dir=model_cache_dir(args.model_cache_dir, environ),
                on_metrics=on_metrics,
                on_system_metrics=on_system_metrics,
            )
        final = {k: round(v, 4) for k, v in result.metrics.items() if k in shown}
        print(
            f"saved the policy to {result.final_checkpoint} after {result.steps_completed} steps "
            f"({result.skipped_ties} tie(s) skipped) {json.dumps(final)}"
        )
        return 0

    return run_cli(train)
