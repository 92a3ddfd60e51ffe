"""The two biggest items of Steer's decode step on a GPU, timed against alternatives at the
bench's shape, before any of them goes into the engine (issue 7; notes in bench/grpo_step.md).

    python bench/decode_kernels.py                 # GPU: SmolLM2-135M's decode shape
    .venv/bin/python bench/decode_kernels.py --device cpu --rows 8 --vocab 512   # dry run

1. Attention of one decode token over a bucket of the KV cache: 256 rows, 3 key/value heads
   with 3 query heads each (packed as 3 query rows per key/value head, as
   ``static_decoder._layer`` does), head size 64, an additive key mask, bucket widths 64..384.
   The H200 profile gave 35 us a call for cuDNN's kernel, against about 9 us for reading the
   cache at the mean width. FlexAttention as the engine's compiled step calls it (the whole
   cache wide, a block count saying how many 64-slot blocks to read; the default on CUDA since
   the twenty-second session; compiled on CUDA only) is one of the variants. Each variant is
   captured 30 times (one per layer) in a CUDA graph and the graph replayed, as the decoder
   replays its step; its output is compared with a float32 reference.
2. The sampler's draw: ``rollout.sample_categorical``'s two-level draw (float64 sums of
   512-wide blocks, the block holding the draw, then a scan of that block only), against the
   one float64 scan of the whole (256, 49,152) row it replaced (186 us a token on the H200)
   and ``torch.multinomial``. The two inversions get the same uniforms; the table gives how
   often they pick the same token.

Prints one table per item: microseconds per call and the largest difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workers.engine.rollout import sample_categorical  # noqa: E402


# --- timing --------------------------------------------------------------------------------

def time_calls(fn: Callable[[], object], *, device: str, layers: int, repeats: int) -> float:
    """Microseconds per call of ``fn``: on CUDA, ``layers`` calls captured in one graph and the
    graph replayed ``repeats`` times (kernel time, no launch overhead, as in the decoder); on a
    CPU, plain calls."""
    if device.startswith("cuda"):
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(layers):
                fn()
        graph.replay()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        samples = []
        for _ in range(repeats):
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) * 1000 / layers)
        return statistics.median(samples)
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(layers):
            fn()
        samples.append((time.perf_counter() - t0) * 1e6 / layers)
    return statistics.median(samples)


def time_eager(fn: Callable[[], object], *, device: str, repeats: int) -> float:
    """Microseconds per call, each call timed alone (for work that draws random numbers)."""
    fn()
    samples = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        samples.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(samples)


# --- 1. decode attention -------------------------------------------------------------------

def attention_inputs(rows: int, kv_heads: int, group: int, head_dim: int, width: int,
                     device: str, dtype: torch.dtype, seed: int = 0):
    """q (N, KV, G, D), k and v (N, KV, W, D), an additive mask (N, 1, 1, W) and the boolean
    one: rows whose prompts are left-padded by 0..W/2 slots, as a bucket of the cache holds."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    q = torch.randn(rows, kv_heads, group, head_dim, generator=gen).to(device, dtype)
    k = torch.randn(rows, kv_heads, width, head_dim, generator=gen).to(device, dtype)
    v = torch.randn(rows, kv_heads, width, head_dim, generator=gen).to(device, dtype)
    pad = torch.randint(0, max(width // 2, 1), (rows,), generator=gen)
    valid = (torch.arange(width)[None, :] >= pad[:, None]).to(device)
    additive = torch.zeros(valid.shape, dtype=dtype, device=device).masked_fill_(
        ~valid, float("-inf"))[:, None, None, :]
    return q, k, v, additive, valid[:, None, None, :]


def manual_attention(q, k, v, additive, scale):
    """softmax(q k^T * scale + mask) v with float32 scores: three kernels, or one fused
    reduction under torch.compile."""
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale + additive.float()
    return torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)


def attention_variants(device: str) -> dict[str, Callable]:
    from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: PLC0415

    def sdpa_with(backend):
        def run(q, k, v, additive, boolean, scale):
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=additive, scale=scale)
        return run
    variants = {
        "sdpa, additive mask (the engine's)": lambda q, k, v, a, b, s:
            F.scaled_dot_product_attention(q, k, v, attn_mask=a, scale=s),
        "sdpa, boolean mask": lambda q, k, v, a, b, s:
            F.scaled_dot_product_attention(q, k, v, attn_mask=b, scale=s),
        "sdpa efficient-attention": sdpa_with(SDPBackend.EFFICIENT_ATTENTION),
        "sdpa math": sdpa_with(SDPBackend.MATH),
        "matmul + softmax": lambda q, k, v, a, b, s: manual_attention(q, k, v, a, s),
    }
    if device.startswith("cuda"):
        variants["sdpa cuDNN"] = sdpa_with(SDPBackend.CUDNN_ATTENTION)
        compiled = torch.compile(manual_attention, dynamic=False)
        variants["matmul + softmax, compiled"] = lambda q, k, v, a, b, s: compiled(q, k, v, a, s)
    return variants


class WholeCacheFlex:
    """FlexAttention as the engine's compiled decode step calls it (static_decoder,
    ``_flex_decode_attention`` with ``_cache_block_mask``): keys and values the whole cache
    wide (``width``), a key mask as a score modification, and a block mask counting the 64-slot
    blocks to read. Compiled once (static shapes) on CUDA; on a CPU, PyTorch's eager reference
    (the dry run's check of this code)."""

    def __init__(self, rows: int, kv_heads: int, group: int, head_dim: int, width: int,
                 device: str, dtype: torch.dtype):
        from workers.engine.static_decoder import (  # noqa: PLC0415
            _cache_block_mask, _flex_decode_attention)

        shape = (rows, kv_heads, width, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.valid = torch.zeros((rows, width + 1), dtype=torch.bool, device=device)
        self.blocks = torch.ones((1, 1, 1), dtype=torch.int32, device=device)
        self.mask = _cache_block_mask(self.blocks, group, width)
        self.fn = (torch.compile(_flex_decode_attention, dynamic=False)
                   if device.startswith("cuda") else _flex_decode_attention)

    def load(self, k: torch.Tensor, v: torch.Tensor, boolean: torch.Tensor) -> None:
        """A bucket's keys, values and mask at the front of the cache; its blocks counted."""
        width = k.shape[2]
        for cache, part in ((self.k, k), (self.v, v)):
            cache.zero_()
            cache[:, :, :width] = part
        self.valid.zero_()
        self.valid[:, :width] = boolean[:, 0, 0, :]
        self.blocks.fill_(-(-width // 64))

    def __call__(self, q: torch.Tensor, scale: float) -> torch.Tensor:
        return self.fn(q, self.k, self.v, self.valid, scale, self.mask)


def bench_attention(args) -> list[dict]:
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    scale = args.head_dim ** -0.5
    rows = []
    whole = WholeCacheFlex(args.rows, args.kv_heads, args.group, args.head_dim,
                           -(-max(args.widths) // 64) * 64, args.device, dtype)
    for width in args.widths:
        q, k, v, additive, boolean = attention_inputs(args.rows, args.kv_heads, args.group,
                                                      args.head_dim, width, args.device, dtype)
        reference = manual_attention(q.float(), k.float(), v.float(), additive, scale)
        read_mb = 2 * k.numel() * k.element_size() / 1e6
        whole.load(k, v, boolean)
        variants = attention_variants(args.device)
        variants["flex, whole cache + block count (the engine's compiled step)"] = (
            lambda q, k, v, a, b, s: whole(q, s))
        for name, fn in variants.items():
            row = {"width": width, "variant": name, "cache_read_mb": round(read_mb, 1)}
            try:
                out = fn(q, k, v, additive, boolean, scale)
                row["max_abs_diff"] = float((out.float() - reference).abs().max())
                row["us"] = time_calls(lambda fn=fn: fn(q, k, v, additive, boolean, scale),
                                       device=args.device, layers=args.layers,
                                       repeats=args.repeats)
            except Exception as exc:  # noqa: BLE001 (a backend that refuses the shape: say so)
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


# --- 2. the sampler's draw -----------------------------------------------------------------

def full_scan_draw(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The engine's draw before the two levels: one float64 scan of the whole row."""
    cdf = probs.cumsum(dim=-1, dtype=torch.float64)
    index = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
    return torch.minimum(index, cdf.argmax(dim=-1, keepdim=True)).squeeze(1)


def bench_sampler(args) -> list[dict]:
    gen = torch.Generator(device="cpu").manual_seed(1)
    logits = torch.randn(args.rows, args.vocab, generator=gen) * 3
    probs = torch.softmax(logits, dim=-1).to(args.device)
    u = torch.rand(args.rows, 1, generator=gen, dtype=torch.float64).to(args.device)
    device_gen = torch.Generator(device=args.device).manual_seed(2)
    rows = []
    for name, fn in {
        "two-level, 512-wide blocks (the engine's sample_categorical)":
            lambda: sample_categorical(probs, device_gen),
        "float64 full scan (the engine's draw before)": lambda: full_scan_draw(probs, u),
        "torch.multinomial": lambda: torch.multinomial(probs, 1, generator=device_gen),
    }.items():
        row = {"variant": name, "us": time_eager(fn, device=args.device, repeats=args.repeats)}
        if name.startswith("two-level"):  # the engine draws one float64 uniform per row
            same = []
            for seed in range(5):
                engine = sample_categorical(probs, torch.Generator(args.device).manual_seed(seed))
                drawn = torch.rand((args.rows, 1), dtype=torch.float64, device=args.device,
                                   generator=torch.Generator(args.device).manual_seed(seed))
                same.append((engine == full_scan_draw(probs, drawn)).float().mean())
            row["same_token_as_full_scan"] = float(torch.stack(same).mean())
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--kv-heads", type=int, default=3)
    parser.add_argument("--group", type=int, default=3)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 192, 384])
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--layers", type=int, default=30, help="calls captured per graph")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report = {"device": args.device, "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
              else None, "attention": bench_attention(args), "sampler": bench_sampler(args)}
    print("\n| width | attention variant | us per call | max abs diff |\n|---|---|---|---|")
    for r in report["attention"]:
        print(f"| {r['width']} | {r['variant']} | {r.get('us', float('nan')):.1f} | "
              f"{r.get('max_abs_diff', float('nan')):.2e} |" + (f" {r['error']}" if "error" in r else ""))
    print("\n| sampler variant | us per draw of all rows | same token |\n|---|---|---|")
    for r in report["sampler"]:
        print(f"| {r['variant']} | {r['us']:.1f} | {r.get('same_token_as_full_scan', '')} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
