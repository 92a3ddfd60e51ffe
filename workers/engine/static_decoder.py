"""A faster rollout decoder for Llama-family policies: a static KV cache, and on CUDA the
one-token decode step captured once in a CUDA graph and replayed for every token.

``StaticCacheSampler`` implements the ``rollout.Sampler`` protocol and returns exactly what
``rollout.sample_completions`` returns for the same inputs and generator state, up to
floating-point rounding: the same prompt layout (left padding, RoPE positions counting real
tokens only), the same temperature-scaled log-probs, and the very same sampling code
(``rollout.draw_tokens``) run on the logits outside the graph.

What it saves on a GPU: Hugging Face's eager decode of a small model spends most of its time
launching about a thousand small kernels per token from Python and growing a ``DynamicCache``
by concatenation. Here the cache is allocated once at its final size and written in place,
q/k/v and gate/up are one matmul each and RMSNorm one kernel, attention runs over a fixed
bucket of the cache (the filled slots rounded up to 64) with a key mask, and on CUDA one graph
replay per token launches the whole step. Compiled on CUDA, the step's attention is
FlexAttention (``torch.nn.attention.flex_attention``), whose decoding kernel inductor generates
for the step's shape; uncompiled, and wherever that compilation fails,
``scaled_dot_product_attention`` with an additive key mask. The host checks
for "all rows finished" every ``check_every`` tokens instead of after each one, so it runs
ahead of the GPU. Figures: bench/grpo_step.md.

Supported: ``LlamaForCausalLM``-shaped models (Llama, SmolLM, Qwen2, Qwen3) with full
attention. ``supports(model)`` says whether a model qualifies; the trainer falls back to the
plain decoder otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .compiling import guarded_compile
from .config import DECODE_ATTENTIONS
from .llama_layers import (add_linear, attention_inputs, gate_up_linears, mlp_hidden,
                           qkv_linears, rms_norm, rope_tables, stack, supports)
from .rollout import (RolloutBatch, SamplingParams, draw_tokens, left_pad,
                      position_ids_from_mask, sample_completions)
from .stopping import check_stop

__all__ = ["StaticCacheSampler", "flex_wanted", "supports"]

log = logging.getLogger(__name__)

_WIDTH_MULTIPLE = 64  # cache widths are rounded up so graphs are reused across steps


def _o_weight_by_group(attn) -> torch.Tensor | None:
    """o_proj's weight with its input columns in (query group, key/value head, dim) order
    instead of (key/value head, query group, dim): the order in which CUDA's memory-efficient
    attention lays out a decode step's output (see ``StaticCacheSampler._layer``). None when
    the two orders agree (one query head per key/value head, or one key/value head): the
    weight itself serves, and no copy is kept."""
    weight = attn.o_proj.weight
    d = attn.head_dim
    kv_heads = attn.k_proj.out_features // d
    group = weight.shape[1] // (kv_heads * d)
    if group == 1 or kv_heads == 1:
        return None
    return weight.view(weight.shape[0], kv_heads, group, d).transpose(1, 2).reshape(
        weight.shape[0], -1)


def flex_wanted(attention: str, *, compiled: bool, device_type: str, head_dim: int) -> bool:
    """Whether the decode step attends with FlexAttention: asked for ("flex"), or "auto", the
    step compiled on a CUDA device (eagerly, flex is only PyTorch's unfused reference) and a
    head size its Triton kernels take as they are (a power of two, at least 16: Triton's dot
    products need 16; SmolLM2, Llama and Qwen heads are 64 or 128)."""
    if attention != "auto":
        return attention == "flex"
    usual_head = head_dim >= 16 and head_dim & (head_dim - 1) == 0
    return compiled and device_type == "cuda" and usual_head


def _flex_decode_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                           key_valid: torch.Tensor, scale: float,
                           block_mask=None) -> torch.Tensor:
    """softmax(q k^T * scale) v over the keys whose slot is valid for the row: q (N, KV, G, D)
    (a key/value head's query heads as query rows), keys and values (N, KV, W, D), key_valid
    (N, >= W) bool. FlexAttention with the mask as a score modification, and ``block_mask``
    (``_cache_block_mask``) saying how many 64-slot blocks of the keys to read at all: under
    torch.compile, inductor's decoding kernel for short queries, which reads those blocks
    once per layer; the key/value head stays the head dimension (a grouped-query ratio of 3
    is not one its GQA path takes). Eagerly, PyTorch's unfused reference implementation."""
    from torch.nn.attention.flex_attention import flex_attention  # noqa: PLC0415

    def masked(score, b, h, q_idx, kv_idx):
        return torch.where(key_valid[b, kv_idx], score, -float("inf"))
    return flex_attention(q, keys, values, score_mod=masked, block_mask=block_mask,
                          scale=scale)


def _cache_block_mask(blocks: torch.Tensor, query_rows: int, width: int):
    """A FlexAttention block mask over a cache ``width`` slots wide (a multiple of 64) whose
    first ``blocks`` (a (1, 1, 1) int32 tensor, written in place before each token) 64-slot
    blocks are read and the rest skipped: every row and head alike (broadcast), the blocks in
    order, none of them "full" (the score modification applies to each). The decode step's
    shapes stay those of the whole cache, so it compiles once, with no dynamic size, and a
    token early in the completion still reads only the blocks it can see. The count only
    saves reading: the key mask already excludes every slot past the current token (and
    PyTorch's eager reference implementation reads all the blocks)."""
    from torch.nn.attention.flex_attention import BlockMask  # noqa: PLC0415

    n_blocks = width // _WIDTH_MULTIPLE
    indices = torch.arange(n_blocks, dtype=torch.int32, device=blocks.device).view(
        1, 1, 1, n_blocks)
    common = dict(BLOCK_SIZE=(128, _WIDTH_MULTIPLE), seq_lengths=(query_rows, width))
    try:  # no backward: the transposed (query-block) tables are not needed
        return BlockMask.from_kv_blocks(blocks, indices, compute_q_blocks=False, **common)
    except TypeError:  # a torch without compute_q_blocks
        return BlockMask.from_kv_blocks(blocks, indices, **common)


@dataclass
class _FusedWeights:
    """One layer's q/k/v projections as one matrix, and its MLP's gate/up as another: one
    matmul each per token instead of three and two; and o_proj's weight with its columns in
    the attention output's order on CUDA (``_o_weight_by_group``). Copies at fixed addresses
    (a captured graph reads them), refreshed in place before every decode."""

    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor | None
    gate_up_weight: torch.Tensor
    gate_up_bias: torch.Tensor | None
    o_weight_by_group: torch.Tensor | None

    @staticmethod
    def _current(layer) -> tuple[torch.Tensor | None, ...]:
        return (*stack(qkv_linears(layer.self_attn)), *stack(gate_up_linears(layer.mlp)),
                _o_weight_by_group(layer.self_attn))

    @classmethod
    @torch.no_grad()
    def allocate(cls, layer) -> _FusedWeights:
        return cls(*cls._current(layer))

    @torch.no_grad()
    def refresh(self, layer) -> None:
        for mine, current in zip(
                (self.qkv_weight, self.qkv_bias, self.gate_up_weight, self.gate_up_bias,
                 self.o_weight_by_group), self._current(layer)):
            if mine is not None:
                mine.copy_(current)


@dataclass
class _Buffers:
    """Everything the decode step reads and writes; allocated once per (rows, width)."""

    keys: list[torch.Tensor]  # per layer (N, KV, W + 1, D); slot W is scratch for capture
    values: list[torch.Tensor]
    key_valid: torch.Tensor  # (N, W + 1) bool: which cache slots a query may attend to
    token: torch.Tensor  # (N,) long: the token fed to the step
    position: torch.Tensor  # (N,) long: its RoPE position
    slot: torch.Tensor  # (1,) long: the cache slot it is written to
    cos: torch.Tensor  # (max_positions, D) RoPE tables, rotate_half's sign in sin
    sin_signed: torch.Tensor
    fused: list[_FusedWeights] = field(default_factory=list)  # per layer
    # step(width): one token over the first ``width`` cache slots (maybe compiled)
    step: Callable[[int], torch.Tensor] | None = None
    eager_step: Callable[[int], torch.Tensor] | None = None  # the same, never compiled
    flex: bool = False  # the decode step's attention is FlexAttention (else SDPA)
    kv_blocks: torch.Tensor | None = None  # flex: (1, 1, 1) int32, 64-slot blocks to read
    block_mask: object = None  # flex: its BlockMask over the whole cache (_cache_block_mask)
    graphs: dict[int, torch.cuda.CUDAGraph] = field(default_factory=dict)  # per bucket width
    logits: dict[int, torch.Tensor] = field(default_factory=dict)  # each graph's (N, V) output

    @property
    def scratch(self) -> int:
        return self.key_valid.shape[1] - 1

    def bucket(self, slot: int) -> int:
        """The cache width a token written at ``slot`` attends over: slot + 1 rounded up to a
        multiple of 64 (one graph per bucket, so early tokens skip the empty tail)."""
        return min(-(-(slot + 1) // _WIDTH_MULTIPLE) * _WIDTH_MULTIPLE, self.scratch)


class StaticCacheSampler:
    """A ``Sampler``: ``sampler(model, prompt_ids, params, pad_id=, eos_ids=, generator=)``.

    Keeps the cache and graphs of the last row count it decoded, at the widest length it has
    needed, so consecutive steps of a run reuse them; a different model (or re-allocated
    weights) gets new ones.
    ``use_graphs`` defaults to True on CUDA; ``check_every`` is how many tokens pass between
    checks that every row has finished. Without graphs each step attends to the filled slots
    only. With graphs a step attends over a bucket of the cache, the filled slots rounded up
    to a multiple of 64 with the rest masked; each bucket gets its own graph, captured when
    first needed. The KV cache is most of what a decode step reads (for the SmolLM2 shape at
    256 rows, about 2 GB per token at the full width of 384), so a token early in the
    completion reads only the part it can see. ``fixed_width=True`` runs the graphs'
    computation (the bucketed, masked width) eagerly; unset, it follows ``use_graphs``, or
    ``compile`` (the compiled step is the bucketed one, graphs or not). ``compile=True``
    compiles that step with ``torch.compile`` before capturing it (fewer, fused kernels per
    token; with SDPA the bucket width is a dynamic size after the first recompilation, while
    the flex step keeps the whole cache's shapes and compiles once).

    ``attention`` is the decode step's attention over the cache: "sdpa"
    (``scaled_dot_product_attention`` with an additive key mask), "flex" (FlexAttention with
    the key mask as a score modification: compiled, one generated decoding kernel per layer;
    eager, PyTorch's unfused reference, for checking) or "auto": flex when the step is
    compiled on a CUDA device and the head size is a power of two from 16 (``flex_wanted``),
    else sdpa. A compiled flex step that fails to compile falls back to the compiled sdpa
    step, and that to the eager one. The prefill always uses sdpa.
    """

    def __init__(self, *, use_graphs: bool | None = None, check_every: int = 8,
                 fixed_width: bool | None = None, compile: bool = False,
                 attention: str = "auto"):
        if attention not in DECODE_ATTENTIONS:
            raise ValueError(f"attention {attention!r} is not one of {DECODE_ATTENTIONS}")
        self.use_graphs = use_graphs
        self.check_every = max(1, check_every)
        self.fixed_width = fixed_width  # attend over 64-slot buckets, as the graphs do
        self.compile = compile  # torch.compile the bucketed step (fuses its small kernels)
        self.attention = attention
        self._key: tuple | None = None
        self._buffers: _Buffers | None = None

    def __call__(self, model, prompt_ids: Sequence[Sequence[int]], params: SamplingParams, *,
                 pad_id: int, eos_ids: Sequence[int],
                 generator: torch.Generator | None = None) -> RolloutBatch:
        if not supports(model):
            return sample_completions(model, prompt_ids, params, pad_id=pad_id,
                                      eos_ids=eos_ids, generator=generator)
        with torch.no_grad():
            return self._decode(model, prompt_ids, params, pad_id, eos_ids, generator)

    # --- decoding --------------------------------------------------------------------------

    def _decode(self, model, prompt_ids, params: SamplingParams, pad_id: int,
                eos_ids: Sequence[int], generator) -> RolloutBatch:
        device = model.lm_head.weight.device
        ids, mask = left_pad(prompt_ids, pad_id, device)
        n, p = ids.shape
        t_max = params.max_new_tokens
        graphs = self.use_graphs if self.use_graphs is not None else device.type == "cuda"
        # The compiled step is the bucketed one: compiling implies the buckets, graphs or not.
        fixed = (graphs or self.compile) if self.fixed_width is None else self.fixed_width
        b = self._buffers_for(model, n, p + t_max, graphs)
        for layer, fused in zip(model.model.layers, b.fused):
            fused.refresh(layer)  # the optimiser changed the weights since the last call
        b.key_valid.zero_()
        b.key_valid[:, :p] = mask.bool()
        positions = position_ids_from_mask(mask)
        logits = self._prefill(model, b, ids, mask, positions)
        b.position.copy_(positions[:, -1] + 1)

        eos = torch.as_tensor(list(eos_ids), device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        tokens = torch.full((n, t_max), pad_id, dtype=torch.long, device=device)
        logps = torch.zeros((n, t_max), dtype=torch.float32, device=device)
        live = torch.zeros((n, t_max), dtype=torch.bool, device=device)
        steps = t_max
        for step in range(t_max):
            check_stop()  # reads the clock only: no sync with the GPU
            token, logp = draw_tokens(logits, params, generator)
            live[:, step] = ~done
            tokens[:, step] = torch.where(done, pad_id, token)
            logps[:, step] = torch.where(done, 0.0, logp)
            done = done | torch.isin(token, eos)
            if step == t_max - 1:
                break
            if (step + 1) % self.check_every == 0 and bool(done.all()):
                steps = step + 1
                break
            slot = p + step
            bucket = b.bucket(slot)
            if graphs and bucket not in b.graphs:
                self._capture(b, bucket)
            b.token.copy_(tokens[:, step])
            b.slot.fill_(slot)
            b.key_valid[:, slot] = True
            if graphs:
                b.graphs[bucket].replay()
                logits = b.logits[bucket]
            else:
                logits = b.step(bucket) if fixed else b.eager_step(slot + 1)
            b.position.add_(1)
        # Rows all finished before the check noticed: trim to where the plain decoder stops.
        live, tokens, logps = live[:, :steps], tokens[:, :steps], logps[:, :steps]
        width_used = int(live.sum(dim=1).max()) if n else 0
        live, tokens, logps = live[:, :width_used], tokens[:, :width_used], logps[:, :width_used]
        stopped = torch.isin(tokens, eos) & live
        return RolloutBatch(
            prompt_ids=ids, prompt_mask=mask, completion_ids=tokens,
            completion_mask=live.long(), sampling_logprobs=logps,
            finish_reasons=["stop" if s else "length" for s in stopped.any(dim=1).tolist()])

    def _prefill(self, model, b: _Buffers, ids, mask, positions) -> torch.Tensor:
        """Run the prompts through every layer, filling cache slots 0..P-1; logits (N, V) of
        the last position."""
        n, p = ids.shape
        causal = torch.ones((p, p), dtype=torch.bool, device=ids.device).tril()
        # A query sees real earlier keys, and always itself (so pad rows are never all-masked).
        allowed = (causal & mask.bool()[:, None, :]) | torch.eye(p, dtype=torch.bool,
                                                                 device=ids.device)
        allowed = allowed[:, None]  # (N, 1, P, P)
        cos, sin = b.cos[positions][:, :, None], b.sin_signed[positions][:, :, None]
        h = model.model.embed_tokens(ids)
        slots = torch.arange(p, device=ids.device)
        for i, layer in enumerate(model.model.layers):
            h = self._layer(layer, b.fused[i], h, cos, sin, b.keys[i], b.values[i], slots,
                            allowed, attend_to=None)
        return model.lm_head(rms_norm(model.model.norm, h[:, -1:]))[:, -1]

    def _step(self, model, b: _Buffers, attend_to: int, *, flex: bool = False) -> torch.Tensor:
        """One token per row from the buffers: logits (N, V), attending over the first
        ``attend_to`` cache slots (those past the filled ones are masked), with FlexAttention
        when ``flex``, else SDPA."""
        cos = b.cos[b.position][:, None, None]  # (N, 1, 1, D)
        sin = b.sin_signed[b.position][:, None, None]
        h = model.model.embed_tokens(b.token[:, None])
        if flex:  # the kernel reads key_valid itself (_flex_decode_attention)
            allowed = None
        else:  # an additive mask, made once per token rather than converted in each layer
            valid = b.key_valid[:, :attend_to]
            allowed = torch.zeros(valid.shape, dtype=b.keys[0].dtype,
                                  device=valid.device).masked_fill_(
                ~valid, float("-inf"))[:, None, None, :]
        for i, layer in enumerate(model.model.layers):
            h = self._layer(layer, b.fused[i], h, cos, sin, b.keys[i], b.values[i], b.slot,
                            allowed, attend_to=attend_to,
                            key_valid=b.key_valid if flex else None,
                            block_mask=b.block_mask if flex else None)
        return model.lm_head(rms_norm(model.model.norm, h))[:, -1]

    @staticmethod
    def _layer(layer, fused: _FusedWeights, h, cos, sin_signed, cache_k, cache_v, slots,
               allowed, *, attend_to, key_valid: torch.Tensor | None = None,
               block_mask=None):
        """One decoder layer. Writes this call's keys/values at ``slots``; attends over the
        call's own keys (prefill, attend_to None) or the first ``attend_to`` cache slots,
        masked by ``allowed`` (additive, SDPA) or, when given, by ``key_valid`` (N, W + 1)
        with FlexAttention."""
        attn = layer.self_attn
        n, s, _ = h.shape
        d = attn.head_dim
        qkv = F.linear(rms_norm(layer.input_layernorm, h), fused.qkv_weight, fused.qkv_bias)
        q, k, v = attention_inputs(attn, qkv, cos, sin_signed)  # (N, S, heads, D)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        cache_k.index_copy_(2, slots, k)
        cache_v.index_copy_(2, slots, v)
        if attend_to is None:
            keys, values = k, v
        else:
            keys, values = cache_k[:, :, :attend_to], cache_v[:, :, :attend_to]
        # Grouped-query attention without copying the cache: the query heads that share a
        # key/value head become extra query rows of that head (a view when S is 1).
        kv_heads, group = keys.shape[1], q.shape[2] // keys.shape[1]
        q = q.transpose(1, 2).reshape(n, kv_heads, group * s, d)
        if key_valid is not None:
            out = _flex_decode_attention(q, keys, values, key_valid, attn.scaling, block_mask)
        else:
            mask = allowed.repeat(1, 1, group, 1) if s > 1 else allowed
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask,
                                                 scale=attn.scaling)
        by_group = out.transpose(1, 2)  # (N, G * S, KV, D)
        if s == 1 and by_group.is_contiguous():
            # CUDA's memory-efficient kernel lays its output out as (N, G, KV, D): o_proj reads
            # it in that order through its reordered copy, with no copy of the output.
            h = add_linear(h, by_group.reshape(n, 1, -1), attn.o_proj,
                           weight=fused.o_weight_by_group)
        else:
            # reshape, not view: the output's layout depends on the kernel.
            out = out.reshape(n, kv_heads * group, s, d).transpose(1, 2).reshape(n, s, -1)
            h = add_linear(h, out, attn.o_proj)
        x = rms_norm(layer.post_attention_layernorm, h)
        gate_up = F.linear(x, fused.gate_up_weight, fused.gate_up_bias)
        return add_linear(h, mlp_hidden(layer.mlp, gate_up), layer.mlp.down_proj)

    # --- buffers and graphs ----------------------------------------------------------------

    def _buffers_for(self, model, n: int, length: int, graphs: bool) -> _Buffers:
        # Slots 0 .. length - 2 are written (the last token is never fed back), rounded up to a
        # multiple of 64 (aligned attention masks), and one scratch slot past them. No bucket
        # spans the whole cache, so a compiled step never meets a full-size slice (which
        # torch.compile would specialise on, costing another compilation). A cache at least as
        # wide is reused, with its graphs: batches whose prompts vary in width do not
        # re-allocate and re-capture every step.
        width = max(-(-(length - 1) // _WIDTH_MULTIPLE), 1) * _WIDTH_MULTIPLE
        weight = model.lm_head.weight
        key = (id(model), n, graphs, weight.dtype, weight.device,
               tuple(p.data_ptr() for p in model.parameters()))
        if self._key == key and self._buffers is not None and self._buffers.scratch >= width:
            return self._buffers
        if self._buffers is not None:  # free the old cache before allocating the new one
            self._buffers.step = self._buffers.eager_step = None  # they close over them
            self._buffers.graphs.clear()
            self._buffers = None
        b = self._allocate(model, n, width)
        b.flex = flex_wanted(self.attention, compiled=self.compile,
                             device_type=weight.device.type,
                             head_dim=model.model.layers[0].self_attn.head_dim)
        if b.flex:
            self._add_block_mask(model, b)

        def step(attend_to: int) -> torch.Tensor:  # the bucketed step over these buffers
            return self._step(model, b, attend_to=attend_to)

        def whole_cache_flex_step(attend_to: int) -> torch.Tensor:
            # attend_to unused: flex attends over the whole cache, reading the blocks that
            # b.kv_blocks counts; never read, the argument adds no guard to the compiled step
            return self._step(model, b, attend_to=b.scratch, flex=True)
        # dynamic=None: the first bucket compiles for its width, the second recompiles once
        # with the width as a dynamic size, and later buckets (and later runs of the same
        # model in this process) reuse that. Not fullgraph: a long-lived worker that meets
        # more models or shapes than dynamo's recompile limit runs the step eagerly (still
        # captured in graphs) instead of failing the run.
        # A compilation that fails logs a warning and leaves the step eager (compiling.py).
        # The flex step has the whole cache's shapes whatever the bucket, so it compiles once,
        # with no dynamic size; one that fails falls back to the (compiled) sdpa step. Each
        # bucket still gets its own graph, which writes its block count before the step.
        b.step = guarded_compile(step, what="the decoder's step") if self.compile else step
        flex_whole = whole_cache_flex_step
        if self.compile and b.flex:
            flex_whole = guarded_compile(
                whole_cache_flex_step, what="the decoder's step with FlexAttention",
                eager=b.step, instead="the step with scaled_dot_product_attention")

        def flex_step(attend_to: int) -> torch.Tensor:
            # The blocks this token reads, written before the step (captured with it: each
            # bucket's graph writes its own count).
            b.kv_blocks.fill_(-(-attend_to // _WIDTH_MULTIPLE))
            return flex_whole(attend_to)
        flex_step.compile_failed = getattr(flex_whole, "compile_failed", lambda: False)
        if b.flex:
            b.step = flex_step
        b.eager_step = flex_step if b.flex else step
        self._key, self._buffers = key, b
        return b

    @staticmethod
    def _add_block_mask(model, b: _Buffers) -> None:
        """The flex step's block count and block mask; a torch whose BlockMask cannot be
        built so leaves the step with SDPA, saying so."""
        b.kv_blocks = torch.ones((1, 1, 1), dtype=torch.int32, device=b.token.device)
        attn = model.model.layers[0].self_attn
        group = attn.q_proj.out_features // attn.k_proj.out_features
        try:
            b.block_mask = _cache_block_mask(b.kv_blocks, group, b.scratch)
        except Exception as exc:  # noqa: BLE001 (a torch whose BlockMask differs)
            first_line = (str(exc).strip().splitlines() or [""])[0][:300]
            log.warning("FlexAttention's block mask could not be built (%s: %s); the "
                        "decoder's step attends with scaled_dot_product_attention",
                        type(exc).__name__, first_line)
            b.flex = False

    @staticmethod
    def _allocate(model, n: int, width: int) -> _Buffers:
        weight = model.lm_head.weight
        device, dtype = weight.device, weight.dtype
        attn = model.model.layers[0].self_attn
        d = attn.head_dim
        kv_heads = attn.k_proj.out_features // d
        shape = (n, kv_heads, width + 1, d)
        layers = len(model.model.layers)
        cos, sin_signed = rope_tables(model.model.rotary_emb,
                                      torch.arange(width, device=device)[None], dtype)
        return _Buffers(
            keys=[torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)],
            values=[torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)],
            key_valid=torch.zeros((n, width + 1), dtype=torch.bool, device=device),
            token=torch.zeros(n, dtype=torch.long, device=device),
            position=torch.zeros(n, dtype=torch.long, device=device),
            slot=torch.full((1,), width, dtype=torch.long, device=device),
            cos=cos[0], sin_signed=sin_signed[0],
            fused=[_FusedWeights.allocate(layer) for layer in model.model.layers])

    @staticmethod
    def _capture(b: _Buffers, bucket: int) -> None:
        """Record the decode step over the first ``bucket`` cache slots into a CUDA graph,
        before the token that first needs it is fed (the buffers hold the previous token's
        state). Warm-up and capture write keys and values only to the scratch slot (index W),
        which no query attends to afterwards: it is zeroed, and stays masked. Warm-up may meet
        rows with no valid key in the bucket (NaN there, thrown away with the scratch slot).
        Each graph keeps its own memory pool, so the graphs can be replayed in any order."""
        scratch = b.scratch
        b.slot.fill_(scratch)
        stream = torch.cuda.Stream(device=b.token.device)
        stream.wait_stream(torch.cuda.current_stream(b.token.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                b.step(bucket)
        torch.cuda.current_stream(b.token.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            b.logits[bucket] = b.step(bucket)
        b.graphs[bucket] = graph
        for cache in (*b.keys, *b.values):
            cache[:, :, scratch].zero_()
