"""One GRPO step, TRL's GRPOTrainer against Steer's engine, on identical work, in one run.

    # GPU (issue 7): SmolLM2-135M-shaped policy, bf16, 32 prompts x 8 x 256 tokens
    python bench/grpo_step.py --device cuda --shape smollm2-135m --json $OUT/grpo_step.json
    # CPU: the same comparison with a tiny model
    HF_HUB_OFFLINE=1 .venv/bin/python bench/grpo_step.py --device cpu --shape tiny

The work (bench/grpo_step_work.py): a randomly initialised policy built from a config, a
word-level tokenizer whose EOS the model cannot emit (every completion runs to full length on
both sides), the same prompts and the same regex reward; beta = 0, mu = 1, one optimizer step
per generation batch. TRL's side is bench/grpo_step_trl.py; Steer's side is the real
``workers.engine.train`` loop, timed through its own ``timing/*`` metrics.

Printed per side: the median step time after warm-up, rollout (generation + scoring) and
update separately, generation alone, completion tokens/s, peak GPU memory and the update's
model FLOP utilisation (6 * parameters * trained tokens / update time / the chip's dense bf16
peak); then TRL's step time over Steer's. ``--check`` first compares Steer's fast path with
its plain path on this model (decoder and chunked log-probs). On CUDA the check and each side
run in a child process of this one (``--isolate``), so that a crash that takes the CUDA context
costs one side, not the run. Notes: bench/grpo_step.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from typing import ClassVar
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from grpo_step_work import (REWARD_PATTERN, Work, build_model, build_prompts,  # noqa: E402
                            build_tokenizer, parameter_count, update_flops)
from workers.engine import Callbacks, PromptRecord, TrainConfig, train  # noqa: E402
from workers.engine import rollout, static_decoder, trainer as engine_trainer  # noqa: E402
from workers.engine.compiling import compile_wanted  # noqa: E402

# Dense bf16 tensor-core peaks (no sparsity), by device-name fragment.
PEAK_BF16_FLOPS = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12, "L40S": 362e12}


def peak_flops(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


# Steer variants: the engine's defaults (the fast path, and on a CUDA device with Triton the
# decoder step compiled, attending with FlexAttention, and the update's RoPE and SwiGLU
# compiled: train.compile_decoder, train.decode_attention and train.compile_layers unset);
# the same with SDPA's attention in the compiled step; the same with the update's layers
# eager; both (steer-before: the default of the twenty-first session, so steer against it
# shows the two levers in one run, flex in the rollout column, the layers in the update's);
# the fast path with the decoder step and the update head's soft-max compiled; with nothing
# compiled; the plain HF path.
STEER_SIDES = {"steer": {"fast": True},
               "steer-sdpa": {"fast": True, "decode_attention": "sdpa"},
               "steer-eager-layers": {"fast": True, "compile_layers": False},
               "steer-before": {"fast": True, "decode_attention": "sdpa",
                                "compile_layers": False},
               "steer-compile": {"fast": True, "compile_decoder": True, "compile_head": True},
               "steer-eager": {"fast": True, "compile_decoder": False, "compile_head": False,
                               "compile_layers": False},
               "steer-plain": {"fast": False}}
# Sides whose extra step is profiled with --profile-dir: two tables, so the device script's
# files stay within the 8 a device call brings back.
PROFILED_SIDES = ("steer", "steer-before")


# --- Steer's side --------------------------------------------------------------------------

GENERATE_CALLS: list[float] = []  # seconds of each sampler call (generation alone)


def _timed_generation(decode, model, *args, **kwargs):
    device = str(next(model.parameters()).device)
    _sync(device)
    started = time.perf_counter()
    out = decode(model, *args, **kwargs)
    _sync(device)
    GENERATE_CALLS.append(time.perf_counter() - started)
    return out


class _TimedSampler(static_decoder.StaticCacheSampler):
    """The engine's own fast sampler, timed; notes whether its decode step attended with
    FlexAttention (and did not fall back to SDPA's step)."""

    flex_used: ClassVar[bool] = False  # by the rollout's last call (not the evaluation's)

    def __call__(self, model, *args, **kwargs):
        out = _timed_generation(super().__call__, model, *args, **kwargs)
        b = self._buffers
        if b is not None and self.compile:
            failed = getattr(b.step, "compile_failed", lambda: False)()
            _TimedSampler.flex_used = bool(b.flex) and not failed
        return out


def _timed_plain_sampler(model, *args, **kwargs):
    """The engine's plain sampler, timed."""
    return _timed_generation(rollout.sample_completions, model, *args, **kwargs)


def steer_config(work: Work, *, steps: int, warmup: int, device: str, dtype: torch.dtype,
                 micro_batch_size: int, model_path: Path, fast: bool,
                 compile_decoder: bool | None = None, compile_head: bool = False,
                 decode_attention: str = "auto", compile_layers: bool | None = None
                 ) -> TrainConfig:
    return TrainConfig.from_dict({
        "policy": {"source": "path", "path": str(model_path),
                   "dtype": "bfloat16" if dtype == torch.bfloat16 else "float32"},
        "rollout": {"num_generations": work.generations, "prompts_per_step": work.prompts,
                    "max_new_tokens": work.completion_tokens, "temperature": work.temperature,
                    "top_p": 1.0, "use_chat_template": False},
        "rewards": [{"name": "regex", "pattern": REWARD_PATTERN, "mode": "search"}],
        # TRL's defaults: loss_type "dapo" (token mean over the batch), group-scaled
        # advantages, clip 0.2, grad-norm clip 1.0; beta 0 and mu 1 as the issue fixes.
        "algorithm": {"estimator": "grpo", "scale": "group", "loss_aggregation": "token_mean",
                      "beta": 0.0, "num_iterations": 1, "clip_eps_low": 0.2,
                      "clip_eps_high": 0.2},
        "optim": {"lr": work.lr, "max_grad_norm": 1.0},
        "train": {"total_steps": warmup + steps, "checkpoint_every": 10 ** 6,
                  "keep_checkpoints": 1, "log_rollouts_fraction": 0.0, "device": device,
                  "seed": work.seed, "micro_batch_size": micro_batch_size,
                  "fast_path": fast, "compile_decoder": compile_decoder,
                  "compile_head": compile_head, "decode_attention": decode_attention,
                  "compile_layers": compile_layers},
    })


def run_steer(work: Work, *, steps: int, warmup: int, device: str, dtype: torch.dtype,
              micro_batch_size: int, output_dir: Path, fast: bool = True,
              compile_decoder: bool | None = None, compile_head: bool = False,
              decode_attention: str = "auto", compile_layers: bool | None = None,
              profile_to: Path | None = None) -> dict:
    """Time ``steps`` steps after ``warmup``; with ``profile_to``, one more step runs under
    torch.profiler (not timed) and its kernel table is written there."""
    tokenizer = build_tokenizer(work.model_config["vocab_size"])
    model = build_model(work, dtype=dtype, device="cpu")
    model_path = output_dir / "policy"
    model.save_pretrained(model_path)
    tokenizer.save_pretrained(model_path)
    n_params = parameter_count(model)
    del model
    prompts = build_prompts(work)
    records = [PromptRecord(p, id=i) for i, p in enumerate(prompts)]
    prompt_tokens = sum(len(tokenizer(p)["input_ids"]) for p in prompts)
    config = steer_config(work, steps=steps + (profile_to is not None), warmup=warmup,
                          device=device, dtype=dtype, micro_batch_size=micro_batch_size,
                          model_path=model_path, fast=fast, compile_decoder=compile_decoder,
                          compile_head=compile_head, decode_attention=decode_attention,
                          compile_layers=compile_layers)
    profiler = None
    if profile_to is not None:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.startswith("cuda"):
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        profiler = torch.profiler.profile(
            activities=activities,
            schedule=torch.profiler.schedule(wait=warmup + steps, warmup=0, active=1, repeat=1))

    GENERATE_CALLS.clear()
    per_step: list[dict] = []
    clock = {"last": None}

    def on_metrics(step, metrics):
        now = time.perf_counter()
        per_step.append({
            "step": step, "step_s": None if clock["last"] is None else now - clock["last"],
            "rollout_s": metrics["timing/rollout_s"], "update_s": metrics["timing/update_s"],
            "generate_s": GENERATE_CALLS[-1] if GENERATE_CALLS else None,
            "completion_tokens": metrics["completions/mean_length"] * work.rows,
            "all_full_length": metrics["completions/min_length"] == work.completion_tokens,
            "reward_mean": metrics["reward"]})
        if profiler is not None:
            profiler.step()
        clock["last"] = time.perf_counter()

    # The trainer builds its sampler in _open_session; swap in the timed one for this run.
    _TimedSampler.flex_used = False
    original = engine_trainer.StaticCacheSampler, engine_trainer.sample_completions
    engine_trainer.StaticCacheSampler = _TimedSampler
    if not fast:
        engine_trainer.sample_completions = _timed_plain_sampler
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    fallbacks = _CompileFallbacks()  # a compilation that failed ran eagerly: say so
    logging.getLogger("workers.engine.compiling").addHandler(fallbacks)
    try:
        if profiler is not None:
            profiler.start()
        train(config, records, Callbacks(on_metrics=on_metrics), output_dir=output_dir / "run")
    finally:
        logging.getLogger("workers.engine.compiling").removeHandler(fallbacks)
        engine_trainer.StaticCacheSampler, engine_trainer.sample_completions = original
        if profiler is not None:
            profiler.stop()
    if profiler is not None:
        per_step = per_step[:warmup + steps]  # the profiled step is not timed
        averages = profiler.key_averages()
        sorts = (["self_device_time_total", "self_cuda_time_total"]
                 if device.startswith("cuda") else []) + ["self_cpu_time_total"]
        for sort in sorts:  # the device column's name differs between torch releases
            try:
                profile_to.write_text(averages.table(sort_by=sort, row_limit=50))
                break
            except (AttributeError, KeyError, ValueError):
                continue
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.startswith("cuda") else None

    timed = [r for r in per_step[warmup:] if r["step_s"] is not None]

    def median(key):
        values = [r[key] for r in timed if r.get(key) is not None]
        return statistics.median(values) if values else None

    step_s = median("step_s")
    return {
        "step_s": step_s, "rollout_s": median("rollout_s"), "update_s": median("update_s"),
        "generate_s": median("generate_s"),
        "tokens_per_s": median("completion_tokens") / step_s,
        "peak_mem_gib": peak, "completion_tokens_per_step": median("completion_tokens"),
        "trained_tokens_per_step": prompt_tokens * work.generations
        + work.rows * work.completion_tokens,
        "all_full_length": all(r["all_full_length"] for r in per_step),
        "loss_type": "token_mean", "parameters": n_params, "steps_timed": len(timed),
        "per_step": per_step,
        # what ran compiled: train.compile_* as set, or resolved for the device when unset
        "compiled": {"decoder": fast and compile_wanted(config.train.compile_decoder, device),
                     "head": fast and config.train.compile_head,
                     "layers": fast and compile_wanted(config.train.compile_layers, device)},
        # the decode step's attention as it ran (flex only when compiled and not fallen back)
        "decode_attention": ("flex" if _TimedSampler.flex_used else "sdpa") if fast else None,
        "compile_fallbacks": fallbacks.messages,
    }


class _CompileFallbacks(logging.Handler):
    """Keeps the messages of compilations that failed and ran eagerly (compiling.py)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# --- fast path against plain path on this model --------------------------------------------

def check_fast_path(work: Work, device: str, dtype: torch.dtype) -> dict:
    """Steer's fast decoder and fast update log-probs (packed forward, chunked head) against
    the plain ones, on 16 rows of this work's model: identical sampled tokens, and the
    log-prob / gradient differences; where the engine compiles the update's layers by default
    (a CUDA device with Triton), the same for the fast update with them compiled."""
    from workers.engine.chunked_logprobs import fast_token_logprobs  # noqa: PLC0415
    from workers.engine.losses import token_logprobs  # noqa: PLC0415
    from workers.engine.packed_forward import compiled_layers  # noqa: PLC0415
    from workers.engine.rollout import SamplingParams, sample_completions  # noqa: PLC0415
    from workers.engine.update import training_attention  # noqa: PLC0415

    model = build_model(work, dtype=dtype, device=device).eval()
    tokenizer = build_tokenizer(work.model_config["vocab_size"])
    prompts = [tokenizer(p)["input_ids"] for p in build_prompts(work)[:16]]
    params = SamplingParams(max_new_tokens=64, temperature=work.temperature)
    common = dict(pad_id=0, eos_ids=[tokenizer.eos_token_id])
    out = {}
    for name, sampler in (("plain", sample_completions),
                          ("fast", static_decoder.StaticCacheSampler())):
        generator = torch.Generator(device=device).manual_seed(0)
        out[name] = sampler(model, prompts, params, generator=generator, **common)
    plain, fast = out["plain"], out["fast"]
    same_rows = (plain.completion_ids == fast.completion_ids).all(dim=1).float().mean()
    first_diff = (plain.completion_ids != fast.completion_ids).float().argmax(dim=1)
    batch = fast
    t = batch.completion_ids.shape[1]
    grads = {}
    names = ("plain", "fast") + (("compiled",) if compile_wanted(None, device) else ())
    for name in names:
        model.zero_grad(set_to_none=True)
        # the update's attention kernels, and its layers compiled or not
        with training_attention(torch.device(device)), compiled_layers(name == "compiled"):
            if name == "plain":
                lp, _ = token_logprobs(model, batch.input_ids, batch.attention_mask, t, 1.0)
            else:
                lp, _ = fast_token_logprobs(model, batch.input_ids, batch.attention_mask, t,
                                            1.0, completion_mask=batch.completion_mask)
            (lp * batch.completion_mask).sum().backward()
        grads[name] = (lp.detach() * batch.completion_mask,
                       torch.cat([p.grad.float().flatten() for p in model.parameters()]))
    (lp0, g0), (lp1, g1) = grads["plain"], grads["fast"]
    report = {
        "decoder_identical_rows": float(same_rows),
        "decoder_first_divergence_median": float(first_diff.float().median()),
        "sampler_logprob_max_abs_diff_vs_teacher_forced": float(
            ((lp0 - batch.sampling_logprobs).abs()).max()),
        "update_logprob_max_abs_diff": float((lp0 - lp1).abs().max()),
        "update_grad_rel_diff": float((g0 - g1).norm() / g0.norm()),
    }
    if "compiled" in grads:
        lp2, g2 = grads["compiled"]
        report["update_compiled_layers_logprob_max_abs_diff"] = float((lp0 - lp2).abs().max())
        report["update_compiled_layers_grad_rel_diff"] = float((g0 - g2).norm() / g0.norm())
    return report


# --- report --------------------------------------------------------------------------------

def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(results: dict, work: Work, device: str) -> str:
    peak = peak_flops(device)
    rows = ["| side | step s | rollout s | generate s | update s | tokens/s | peak GiB "
            "| update MFU | TRL step / this |", "|---|---|---|---|---|---|---|---|---|"]
    trl_step = results.get("trl", {}).get("step_s")
    for side, r in results.items():
        mfu = None
        if peak and r.get("update_s"):
            n = r.get("parameters") or results.get("steer", {}).get("parameters")
            if n:
                mfu = update_flops(n, r["trained_tokens_per_step"]) / r["update_s"] / peak
        rows.append(f"| {side} | {_fmt(r['step_s'], '.3f')} | {_fmt(r['rollout_s'], '.3f')} "
                    f"| {_fmt(r['generate_s'], '.3f')} | {_fmt(r['update_s'], '.3f')} "
                    f"| {_fmt(r['tokens_per_s'], ',.0f')} | {_fmt(r['peak_mem_gib'], '.2f')} "
                    f"| {_fmt(mfu and 100 * mfu, '.1f')}{'%' if mfu else ''} "
                    f"| {_fmt(trl_step and trl_step / r['step_s'], '.2f')} |")
    return "\n".join(rows)


def run_side(side: str, args, work: Work, dtype: torch.dtype, micro: int) -> dict:
    """One side's figures, run in this process."""
    with tempfile.TemporaryDirectory(prefix=f"grpo-{side}-") as tmp:
        if side == "trl":
            from grpo_step_trl import run_trl  # noqa: PLC0415
            return run_trl(work, steps=args.steps, warmup=args.warmup, device=args.device,
                           dtype=dtype, micro_batch_size=args.trl_micro_batch_size or micro,
                           output_dir=Path(tmp))
        profile_to = (args.profile_dir / f"{side}_profile.txt"
                      if args.profile_dir and side in PROFILED_SIDES else None)
        return run_steer(work, steps=args.steps, warmup=args.warmup, device=args.device,
                         dtype=dtype, micro_batch_size=micro, output_dir=Path(tmp),
                         profile_to=profile_to, **STEER_SIDES[side])


def print_side(side: str, r: dict) -> None:
    compiled = ("" if "compiled" not in r else ", compiled: "
                + ("+".join(k for k, on in r["compiled"].items() if on) or "none"))
    if r.get("decode_attention"):
        compiled += f", decode attention: {r['decode_attention']}"
    print(f"{side}: step {r['step_s']:.3f} s (rollout {r['rollout_s']:.3f}, update "
          f"{r['update_s']:.3f}), all full length: {r['all_full_length']}{compiled}, side's "
          f"wall {r['wall_s']:.0f} s (loading, warm-up and compilation included)", flush=True)
    for message in r.get("compile_fallbacks", []):
        print(f"{side}: compilation failed, ran eagerly: {message}", flush=True)


_CHILD: list[subprocess.Popen] = []  # the child running now, for the SIGTERM handler


def _stop_child(signum, frame) -> None:
    """``timeout`` signals this process alone: end the child too, so that nothing keeps the
    GPU or the output pipe after the bench's time is up."""
    for child in _CHILD:
        child.kill()
    raise SystemExit(128 + signum)


def run_child(args, *, side: str | None = None, check: bool = False) -> dict:
    """The check, or one side, in a process of its own (this script with --no-isolate); its
    output goes to this one's. Returns its JSON report, or {"error": ...} if it wrote none."""
    with tempfile.TemporaryDirectory(prefix="grpo-part-") as tmp:
        part = Path(tmp) / "part.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--no-isolate",
               "--device", args.device, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--completion-tokens", str(args.completion_tokens),
               "--prompts", str(args.prompts), "--threads", str(args.threads),
               "--sides", side or "", "--json", str(part), "--part"]
        for flag, value in (("--shape", args.shape), ("--micro-batch-size", args.micro_batch_size),
                            ("--trl-micro-batch-size", args.trl_micro_batch_size),
                            ("--profile-dir", args.profile_dir)):
            if value is not None:
                cmd += [flag, str(value)]
        if check:
            cmd.append("--check")
        child = subprocess.Popen(cmd)
        _CHILD.append(child)
        try:
            code = child.wait()
        finally:
            _CHILD.remove(child)
        if part.exists():
            report = json.loads(part.read_text())
            if code == 0 or report.get("results") or report.get("check"):
                return report
        what = "the check" if check else side
        message = f"{what}'s process exited with code {code} and no figures"
        print(f"{what}: FAILED ({message})", flush=True)
        return {"error": message}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shape", default=None, help="smollm2-135m (GPU default) or tiny")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1)")
    parser.add_argument("--completion-tokens", type=int, default=256)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--micro-batch-size", type=int, default=None,
                        help="completions per forward/backward, both sides (default 64)")
    parser.add_argument("--trl-micro-batch-size", type=int, default=None,
                        help="TRL's micro-batch (default: the same)")
    parser.add_argument("--sides", default="trl,steer",
                        help="comma list of trl, " + ", ".join(STEER_SIDES) + " (run order)")
    parser.add_argument("--check", action="store_true", help="fast vs plain path check first")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                        help="run the check and each side in a process of its own (default on "
                             "CUDA): a crash that takes the CUDA context with it (an illegal "
                             "memory access in a generated kernel) costs that side alone, and "
                             "each side's peak memory is its own")
    parser.add_argument("--part", action="store_true", help=argparse.SUPPRESS)  # a child's run
    parser.add_argument("--profile-dir", type=Path, default=None,
                        help="profile one extra (untimed) step of the "
                             + " and ".join(PROFILED_SIDES)
                             + " sides; kernel tables go to DIR/<side>_profile.txt")
    args = parser.parse_args()
    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (the first step includes loading)")

    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging  # noqa: PLC0415
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    cuda = args.device.startswith("cuda")
    shape = args.shape or ("smollm2-135m" if cuda else "tiny")
    dtype = torch.bfloat16 if cuda else torch.float32
    work = Work(shape=shape, prompts=args.prompts, completion_tokens=args.completion_tokens)
    micro = args.micro_batch_size or 64
    report = {"work": work.__dict__, "device": args.device, "dtype": str(dtype),
              "torch": torch.__version__, "python": platform.python_version(),
              "micro_batch_size": micro,
              "gpu": torch.cuda.get_device_name(args.device) if cuda else None}
    try:
        import transformers  # noqa: PLC0415
        import trl  # noqa: PLC0415
        report.update(transformers=transformers.__version__, trl=trl.__version__)
    except ImportError:
        report.update(trl=None)
    if not args.part:
        print(json.dumps({k: v for k, v in report.items()}), flush=True)

    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = [s for s in sides if s != "trl" and s not in STEER_SIDES]
    if unknown:
        parser.error(f"unknown side(s) {', '.join(unknown)}")
    isolate = cuda if args.isolate is None else args.isolate
    if isolate:
        signal.signal(signal.SIGTERM, _stop_child)
    results: dict[str, dict] = {}
    if args.check:
        if isolate:
            part = run_child(args, check=True)
            report["check"] = part.get("check") or {"error": part.get("error")}
        else:
            try:
                report["check"] = check_fast_path(work, args.device, dtype)
            except Exception as exc:  # report it, still run the sides
                traceback.print_exc()
                report["check"] = {"error": repr(exc)}
            print("fast-path check:", json.dumps(report["check"]), flush=True)

    for side in sides:
        started = time.perf_counter()
        if isolate:
            part = run_child(args, side=side)
            if side in part.get("results", {}):
                results[side] = part["results"][side]
            else:
                report.setdefault("errors", {})[side] = (part.get("errors", {}).get(side)
                                                         or part.get("error"))
        else:
            try:
                results[side] = run_side(side, args, work, dtype, micro)
            except Exception as exc:  # one failing side must not lose the others' figures
                traceback.print_exc()
                report.setdefault("errors", {})[side] = repr(exc)
                print(f"{side}: FAILED {exc!r}", flush=True)
            if cuda:
                gc.collect()  # the side's model, cache and graphs, before the next peak is read
                torch.cuda.empty_cache()
        if side not in results:
            continue
        r = results[side]
        r["wall_s"] = time.perf_counter() - started
        if args.json:  # after every side, so a run cut short keeps what it measured
            report["results"] = results
            args.json.write_text(json.dumps(report, indent=2, default=str))
        if not args.part:  # a child's side is printed by its parent, with the child's start
            print_side(side, r)

    report["results"] = results
    if args.part:  # the parent prints the table
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, default=str))
        return
    print()
    print(table(results, work, args.device))
    if "trl" in results and "steer" in results:
        ratio = results["trl"]["step_s"] / results["steer"]["step_s"]
        report["ratio_trl_over_steer"] = ratio
        print(f"\nTRL step / Steer step: {ratio:.2f}x "
              f"(rollout {results['trl']['rollout_s'] / results['steer']['rollout_s']:.2f}x, "
              f"update {results['trl']['update_s'] / results['steer']['update_s']:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
