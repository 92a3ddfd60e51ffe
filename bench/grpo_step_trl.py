"""The TRL half of bench/grpo_step.py: time GRPO steps of TRL's ``GRPOTrainer`` on ``Work``.

One optimizer step here is one generation of ``work.rows`` completions (``work.prompts`` prompts
x ``work.generations``) of ``work.completion_tokens`` tokens each with plain HF ``generate``,
scoring with ``reward``, and one policy update over all of them in micro-batches of
``micro_batch_size`` completions, followed by a single AdamW step.

How trl 1.16 maps that onto ``GRPOConfig`` (see trl/trainer/grpo_config.py, ``__post_init__``):

* ``per_device_train_batch_size`` counts *completions*, not prompts.
* With neither ``generation_batch_size`` nor ``steps_per_generation`` set, TRL takes
  ``steps_per_generation = gradient_accumulation_steps`` and
  ``generation_batch_size = per_device_train_batch_size * world_size * steps_per_generation``.
  So ``per_device_train_batch_size = micro_batch_size`` and
  ``gradient_accumulation_steps = rows // micro_batch_size`` give one generation of ``rows``
  completions per optimizer step; ``run_trl`` checks the derived values.
* ``num_iterations = 1`` with generation aligned to the optimizer step means TRL skips the extra
  no-grad "old logprobs" forward pass (``old_per_token_logps`` is None and the loss uses
  ``per_token_logps.detach()``), so the rollout is generation + decoding + reward only.

Non-default ``GRPOConfig`` settings and why (everything else is TRL's default):

* ``activation_checkpointing=False`` (the new name of ``gradient_checkpointing`` in transformers
  5.23): TRL defaults gradient checkpointing to True (transformers' default is False); the
  comparison is of the plain update.
* ``bf16``: TRL defaults it to True whenever fp16 is off, even on CPU; here it is True only for a
  bfloat16 model on CUDA, so a float32 CPU run really is float32.
* ``beta=0.0`` (already TRL's default; no reference model is built), ``num_iterations=1``,
  ``temperature``, ``top_p=1.0``, ``max_completion_length``, ``num_generations``,
  ``learning_rate``, ``seed``: set explicitly from ``Work`` so the work is pinned even if a default
  moves.
* ``use_vllm=False``: plain HF generate (the default, set explicitly).
* ``report_to="none"``, ``save_strategy="no"``, ``logging_steps`` > ``max_steps``,
  ``disable_tqdm=True``: no logging, checkpointing or progress-bar work inside the run.
* ``use_cpu=True`` on CPU, so accelerate does not pick up an accelerator.
* ``dataloader_num_workers=0`` (the default, set explicitly).

Left at TRL's defaults and worth knowing when comparing: ``loss_type="dapo"`` (token-level loss
normalised by the active tokens of the whole accumulated batch; reported as ``loss_type``),
``scale_rewards="group"``, ``epsilon=0.2`` clipping, ``max_grad_norm=1.0`` (gradient clipping),
a linear learning-rate decay to 0 over ``max_steps`` (irrelevant for speed), the optimizer of
``TrainingArguments.optim`` (reported as ``optim``), and ``shuffle_dataset=True`` (every step
uses all prompts anyway).

Timing:

* ``step_s``: ``on_step_begin`` to ``on_step_end`` of a TrainerCallback, i.e. generation, scoring,
  every micro-batch's forward/backward, clipping, the optimizer step and ``zero_grad``. The
  dataloader fetch of the (string) prompt rows happens just before ``on_step_begin`` and is not
  counted; ``per_step[i]["since_prev_end_s"]`` (end to end of consecutive steps) shows everything.
* ``rollout_s``: the trainer's ``_generate_and_score_completions`` (tokenise, generate, decode,
  reward, advantages), wrapped on the instance.
* ``generate_s``: ``_generate_single_turn``, which is ``model.generate`` plus TRL's EOS masking.
* ``update_s = step_s - rollout_s``, per step.
Each returned figure is the median of its own per-step values over the steps after ``warmup`` (so
the median ``update_s`` need not equal median ``step_s`` - median ``rollout_s``). On CUDA each
clock read is preceded by ``torch.cuda.synchronize()``.

TRL's update also computes per-token entropies in every micro-batch (``_compute_loss`` always
passes ``compute_entropy=True``, for its logged ``entropy`` metric); that cost is part of TRL's
default step and is left in.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import PrinterCallback, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grpo_step_work import Work, build_model, build_prompts, build_tokenizer, reward  # noqa: E402


def _clock(cuda: bool) -> float:
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter()


def _reward_func(prompts, completions, **kwargs) -> list[float]:
    """TRL reward-function signature; completions are decoded strings (prompts are plain text)."""
    return [reward(c) for c in completions]


_reward_func.__name__ = "reward"  # TRL names the reward metric after the function


class _StepTimer(TrainerCallback):
    """Wall clock of each optimizer step, plus the rollout/generate figures the trainer wrappers
    record into ``self.current`` while the step runs."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.steps: list[dict] = []
        self.current: dict | None = None
        self._prev_end: float | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        self.current = {"step": state.global_step + 1, "rollouts": 0}
        self.current["_t0"] = _clock(self.cuda)

    def on_step_end(self, args, state, control, **kwargs):
        t1 = _clock(self.cuda)
        record = self.current
        record["step_s"] = t1 - record.pop("_t0")
        record["since_prev_end_s"] = None if self._prev_end is None else t1 - self._prev_end
        self._prev_end = t1
        self.steps.append(record)
        self.current = None


def _instrument(trainer: GRPOTrainer, timer: _StepTimer, work: Work) -> None:
    """Wrap the rollout and generate methods on the trainer instance (TRL calls them through
    ``self``, so instance attributes take precedence over the class methods)."""
    cuda = timer.cuda
    generate_and_score = trainer._generate_and_score_completions
    generate_single_turn = trainer._generate_single_turn

    @functools.wraps(generate_and_score)
    def timed_generate_and_score(inputs):
        t0 = _clock(cuda)
        out = generate_and_score(inputs)
        t1 = _clock(cuda)
        rec = timer.current
        rec["rollouts"] += 1
        rec["rollout_s"] = rec.get("rollout_s", 0.0) + (t1 - t0)
        # What the update trains on: the non-pad prompt + completion tokens of the whole
        # generation batch, and the padded width every micro-batch is actually run at.
        prompt_mask, completion_mask = out["prompt_mask"], out["completion_mask"]
        rec["trained_tokens"] = int(prompt_mask.sum().item() + completion_mask.sum().item())
        rec["padded_tokens"] = int(prompt_mask.numel() + completion_mask.numel())
        rec["completions"] = int(completion_mask.size(0))
        rec["reward_mean"] = float(trainer._metrics["train"]["reward"][-1])
        return out

    @functools.wraps(generate_single_turn)
    def timed_generate_single_turn(*args, **kwargs):
        t0 = _clock(cuda)
        completion_ids, logprobs = generate_single_turn(*args, **kwargs)
        t1 = _clock(cuda)
        rec = timer.current
        rec["generate_s"] = rec.get("generate_s", 0.0) + (t1 - t0)
        lengths = [len(ids) for ids in completion_ids]
        rec["completion_tokens"] = rec.get("completion_tokens", 0) + sum(lengths)
        rec["all_full_length"] = rec.get("all_full_length", True) and all(
            n == work.completion_tokens for n in lengths)
        return completion_ids, logprobs

    trainer._generate_and_score_completions = timed_generate_and_score
    trainer._generate_single_turn = timed_generate_single_turn


def make_config(work: Work, *, steps: int, warmup: int, device: str, dtype: torch.dtype,
                micro_batch_size: int, output_dir: Path) -> GRPOConfig:
    if work.rows % micro_batch_size:
        raise ValueError(f"micro_batch_size {micro_batch_size} must divide {work.rows} completions")
    max_steps = warmup + steps
    cuda = device.startswith("cuda")
    return GRPOConfig(
        output_dir=str(output_dir),
        # The work.
        num_generations=work.generations,
        max_completion_length=work.completion_tokens,
        temperature=work.temperature,
        top_p=1.0,
        learning_rate=work.lr,
        seed=work.seed,
        beta=0.0,
        num_iterations=1,
        # One generation of work.rows completions per optimizer step (see module docstring).
        per_device_train_batch_size=micro_batch_size,
        gradient_accumulation_steps=work.rows // micro_batch_size,
        max_steps=max_steps,
        # Backend and precision.
        use_vllm=False,
        use_cpu=not cuda,
        bf16=cuda and dtype == torch.bfloat16,
        # TRL's default gradient_checkpointing=True is a deprecated alias in transformers 5.23;
        # setting the new name turns it off without the FutureWarning (the old name mirrors it).
        activation_checkpointing=False,
        dataloader_num_workers=0,
        # No logging / saving work inside the timed run.
        report_to="none",
        save_strategy="no",
        logging_steps=max_steps + 1,
        disable_tqdm=True,
    )


def run_trl(work: Work, *, steps: int, warmup: int, device: str, dtype: torch.dtype,
            micro_batch_size: int, output_dir: Path) -> dict:
    cuda = device.startswith("cuda")
    config = make_config(work, steps=steps, warmup=warmup, device=device, dtype=dtype,
                         micro_batch_size=micro_batch_size, output_dir=output_dir)
    # The derived batch geometry must be exactly one generation per optimizer step.
    assert config.steps_per_generation == config.gradient_accumulation_steps, config
    assert config.generation_batch_size == work.rows, config.generation_batch_size
    assert not config.gradient_checkpointing and not config.activation_checkpointing

    model = build_model(work, dtype=dtype, device=device)
    tokenizer = build_tokenizer(work.model_config["vocab_size"])
    # Plain-text prompts: TRL only applies a chat template to conversational (list-of-messages)
    # prompts, so these are tokenised as they are (the tokenizer adds no special tokens).
    dataset = Dataset.from_dict({"prompt": build_prompts(work)})

    timer = _StepTimer(cuda)
    trainer = GRPOTrainer(model=model, reward_funcs=_reward_func, args=config,
                          train_dataset=dataset, processing_class=tokenizer, callbacks=[timer])
    # With disable_tqdm the Trainer prints its logs (the end-of-training summary) to stdout through
    # PrinterCallback; drop it so stdout carries only the caller's output.
    trainer.remove_callback(PrinterCallback)
    _instrument(trainer, timer, work)

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    peak_mem_gib = torch.cuda.max_memory_allocated() / 2**30 if cuda else None

    per_step = timer.steps
    assert len(per_step) == warmup + steps, len(per_step)
    for rec in per_step:
        # Exactly one rollout of work.rows completions feeds each optimizer step.
        assert rec["rollouts"] == 1 and rec["completions"] == work.rows, rec
        rec["update_s"] = rec["step_s"] - rec["rollout_s"]
    timed = per_step[warmup:]

    def median(key):
        values = [r[key] for r in timed if r.get(key) is not None]
        return statistics.median(values) if values else None

    step_s = median("step_s")
    completion_tokens = median("completion_tokens")
    return {
        "step_s": step_s,
        "rollout_s": median("rollout_s"),
        "update_s": median("update_s"),
        "generate_s": median("generate_s"),
        "tokens_per_s": completion_tokens / step_s,
        "peak_mem_gib": peak_mem_gib,
        "completion_tokens_per_step": completion_tokens,
        "trained_tokens_per_step": median("trained_tokens"),
        "padded_tokens_per_step": median("padded_tokens"),
        "all_full_length": all(r["all_full_length"] for r in per_step),
        "loss_type": trainer.loss_type,
        "optim": str(config.optim),
        "steps_timed": len(timed),
        "per_step": per_step,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="tiny", choices=["tiny", "smollm2-135m"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--prompts", type=int, default=None, help="override Work.prompts")
    parser.add_argument("--completion-tokens", type=int, default=None,
                        help="override Work.completion_tokens")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16"],
                        help="default: bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--micro-batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on cpu")
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/grpo_step_trl"))
    args = parser.parse_args()

    work = Work(shape=args.shape)
    overrides = {k: v for k, v in (("prompts", args.prompts),
                                   ("completion_tokens", args.completion_tokens)) if v is not None}
    work = dataclasses.replace(work, **overrides)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    default_dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    dtype = getattr(torch, args.dtype or default_dtype)

    result = run_trl(work, steps=args.steps, warmup=args.warmup, device=args.device, dtype=dtype,
                     micro_batch_size=args.micro_batch_size, output_dir=args.output_dir)
    print(json.dumps({"work": dataclasses.asdict(work), "dtype": str(dtype), **result}, indent=2))


if __name__ == "__main__":
    main()
