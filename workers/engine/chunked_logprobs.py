"""Log-probs of chosen tokens from hidden states, without the whole batch's logits at once.

The plain path (``losses.token_logprobs``) materialises logits (N, T, V) and a float32
log-softmax of the same size: for a 49k vocabulary that is 200 KB per token, several GB for
one micro-batch. ``selected_logprobs`` computes the LM head and the log-softmax a chunk of
tokens at a time, keeps only each token's log-sum-exp, and recomputes the chunk's logits in
the backward pass. The result and its gradient equal the plain path's up to rounding; memory
for the head is one chunk, so micro-batches can be much larger.

``fast_token_logprobs`` is the drop-in for ``losses.token_logprobs`` on models where
``supports_head`` holds (a final norm inside ``model.model`` and a bias-free ``lm_head``). It
also skips the head on positions the completion mask leaves out, and runs Llama-family
policies through the packed forward (``packed_forward``).
"""

from __future__ import annotations

import torch

from . import packed_forward
from .compiling import guarded_compile
from .rollout import position_ids_from_mask

_CHUNK_ELEMENTS = 1 << 26  # float32 logits per chunk: 256 MB


def chunk_tokens_for(vocab_size: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(vocab_size, 1))


def _scaled(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """x / temperature, skipping the pass over a whole logits chunk when it is 1 (exact)."""
    return x if temperature == 1.0 else x / temperature


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    """float32 for the soft-max maths (float64 stays float64, for gradcheck)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _head_stats(z: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(logprob, entropy or None, log-sum-exp), each (M,), of a chunk's logits z (M, V) in the
    accumulation dtype. Written for ``torch.compile``: it fuses this into reductions that read
    z where it lies (bf16 on a GPU) and write nothing of z's size."""
    zf = _scaled(z.to(_accumulator(z.dtype)), temperature)
    lse = torch.logsumexp(zf, dim=-1)
    logprob = zf.gather(1, targets[:, None]).squeeze(1) - lse
    entropy = None
    if with_entropy:
        entropy = lse - (torch.exp(zf - lse[:, None]) * zf).sum(dim=-1)
    return logprob, entropy, lse


def _head_grad(z: torch.Tensor, targets: torch.Tensor, lse: torch.Tensor, g: torch.Tensor,
               temperature: float) -> torch.Tensor:
    """d(sum g * logprob)/dz for a chunk, in z's dtype: (onehot(t) - softmax(z / tau)) * g / tau.
    Written for ``torch.compile``: one fused pass that reads z and writes the gradient."""
    zf = _scaled(z.to(_accumulator(z.dtype)), temperature)
    hit = torch.arange(z.shape[1], device=z.device)[None, :] == targets[:, None]
    grad = (hit.to(zf.dtype) - torch.exp(zf - lse[:, None])) * g[:, None]
    return _scaled(grad, temperature).to(z.dtype)


_COMPILED: dict[str, object] = {}


def _compiled(name: str):
    """``torch.compile`` of ``_head_stats`` or ``_head_grad``, made once per process; shapes
    are dynamic, so chunks and micro-batches of any length share one compilation (per dtype,
    temperature 1 or not, and entropy or not). Not ``fullgraph``: a long-lived worker that
    meets more variants than dynamo's recompile limit runs the rest eagerly instead of
    failing; one that fails to compile logs a warning and runs eagerly (compiling.py)."""
    if name not in _COMPILED:
        fn = {"stats": _head_stats, "grad": _head_grad}[name]
        _COMPILED[name] = guarded_compile(fn, what=f"the LM head's {name}", dynamic=True)
    return _COMPILED[name]


def _head_fn(name: str, rows: int):
    """The compiled function, except for a chunk of fewer than 2 rows (torch.compile
    specialises sizes 0 and 1, so a one-token last chunk would cost a compilation of its own):
    that runs the same Python function eagerly."""
    if rows < 2:
        return {"stats": _head_stats, "grad": _head_grad}[name]
    return _compiled(name)


def _outputs(hidden: torch.Tensor, with_entropy: bool
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Empty logprob and entropy (or None) vectors for ``hidden``'s rows, in the accumulation
    dtype."""
    m, acc = hidden.shape[0], _accumulator(hidden.dtype)
    logprob = torch.empty(m, dtype=acc, device=hidden.device)
    return logprob, (torch.empty(m, dtype=acc, device=hidden.device) if with_entropy else None)


def _finish_forward(ctx, saved: tuple, temperature: float, chunk: int, logprob: torch.Tensor,
                    entropy: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What both heads' forwards end with: keep ``saved`` and the settings for the backward;
    the entropy carries no gradient."""
    ctx.save_for_backward(*saved)
    ctx.temperature, ctx.chunk = temperature, chunk
    if entropy is not None:
        ctx.mark_non_differentiable(entropy)
    return logprob, entropy


def _head_backward(ctx, hidden: torch.Tensor, weight: torch.Tensor, grad_z_of) -> tuple:
    """The backward both heads share: ``grad_z_of(s, h)`` gives chunk s's gradient of the
    logits (in hidden's dtype) for its hidden rows h; this turns it into the gradients of
    hidden and weight, chunk by chunk (weight's accumulated in float32)."""
    need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    acc = _accumulator(hidden.dtype)
    grad_hidden = torch.empty_like(hidden) if need_h else None
    grad_weight = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_w else None
    for start in range(0, hidden.shape[0], ctx.chunk):
        s = slice(start, start + ctx.chunk)
        h = hidden[s]
        grad_z = grad_z_of(s, h)
        if need_h:
            grad_hidden[s] = grad_z @ weight
        if need_w:
            grad_weight += (grad_z.T @ h).to(acc)
    return (grad_hidden, grad_weight.to(weight.dtype) if need_w else None, None, None, None,
            None)


class _CompiledSelectedLogprobs(torch.autograd.Function):
    """``_SelectedLogprobs`` with the soft-max arithmetic of each chunk compiled
    (``_head_stats``, ``_head_grad``): the matmuls stay cuBLAS's, and the float32 copy of a
    chunk's logits is never written. The backward recomputes each chunk's logits."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature: float, chunk: int,
                with_entropy: bool):
        m = hidden.shape[0]
        logprob, entropy = _outputs(hidden, with_entropy)
        lse = torch.empty_like(logprob)
        for start in range(0, m, chunk):
            s = slice(start, start + chunk)
            h = hidden[s]
            lp, ent, lse[s] = _head_fn("stats", h.shape[0])(h @ weight.T, targets[s],
                                                            temperature, with_entropy)
            logprob[s] = lp
            if with_entropy:
                entropy[s] = ent
        return _finish_forward(ctx, (hidden, weight, targets, lse), temperature, chunk,
                               logprob, entropy)

    @staticmethod
    def backward(ctx, grad_logprob, _grad_entropy):
        hidden, weight, targets, lse = ctx.saved_tensors
        g = grad_logprob.to(lse.dtype)

        def grad_z_of(s, h):
            return _head_fn("grad", h.shape[0])(h @ weight.T, targets[s], lse[s], g[s],
                                                ctx.temperature)
        return _head_backward(ctx, hidden, weight, grad_z_of)


class _SelectedLogprobs(torch.autograd.Function):
    """hidden (M, H), weight (V, H), targets (M,) -> logprob (M,), entropy (M,) (no grad; or
    None without ``with_entropy``) of ``log_softmax(hidden @ weight.T / temperature)``.

    Each chunk's logits go through one fused ``log_softmax`` (two reads, one write), and the
    entropy is read off it as ``-sum(p * log p)``; the backward recomputes a chunk's
    soft-max with one fused ``softmax`` and scales it in place. An earlier version took a
    separate ``logsumexp`` and ``exp(z - lse)``: about twice the passes over a chunk's float32
    logits, which is what the head costs on a GPU (bench/grpo_step.md, item 12)."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature: float, chunk: int,
                with_entropy: bool):
        m, acc = hidden.shape[0], _accumulator(hidden.dtype)
        logprob, entropy = _outputs(hidden, with_entropy)
        # One chunk: keep its soft-max for the backward instead of recomputing the head
        # (memory stays bounded by the chunk; on small heads the recomputation dominates).
        single, probs = m <= chunk, None
        for start in range(0, m, chunk):
            s = slice(start, start + chunk)
            log_p = torch.log_softmax(_scaled((hidden[s] @ weight.T).to(acc), temperature),
                                      dim=-1)
            logprob[s] = log_p.gather(1, targets[s, None]).squeeze(1)
            if single:
                probs = log_p.exp()
                if with_entropy:
                    entropy[s] = -(probs * log_p).sum(dim=-1)
            elif with_entropy:
                entropy[s] = -log_p.exp().mul_(log_p).sum(dim=-1)
        return _finish_forward(ctx, (hidden, weight, targets, probs), temperature, chunk,
                               logprob, entropy)

    @staticmethod
    def backward(ctx, grad_logprob, _grad_entropy):
        hidden, weight, targets, saved_probs = ctx.saved_tensors
        tau, acc = ctx.temperature, _accumulator(hidden.dtype)
        rows = torch.arange(min(ctx.chunk, hidden.shape[0]), device=hidden.device)

        def grad_z_of(s, h):
            g = grad_logprob[s]
            # d logprob_t / d z = onehot(t) - softmax(z), then / tau for the logits.
            if saved_probs is not None:
                grad_z = saved_probs * -g[:, None]
            else:
                grad_z = torch.softmax(_scaled((h @ weight.T).to(acc), tau), dim=-1)
                grad_z.mul_(-g[:, None])
            grad_z[rows[:h.shape[0]], targets[s]] += g
            return _scaled(grad_z, tau).to(hidden.dtype)
        return _head_backward(ctx, hidden, weight, grad_z_of)


def selected_logprobs(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                      temperature: float, chunk: int | None = None, *,
                      with_entropy: bool = True, compiled: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logprob (M,), entropy (M,) or None) of ``targets`` under
    ``log_softmax(hidden @ weight.T / τ)``; differentiable in hidden and weight; entropy
    carries no gradient and is skipped (None) without ``with_entropy``. ``compiled`` runs each
    chunk's soft-max arithmetic through ``torch.compile`` (same values within rounding)."""
    chunk = chunk or chunk_tokens_for(weight.shape[0])
    function = _CompiledSelectedLogprobs if compiled else _SelectedLogprobs
    return function.apply(hidden, weight, targets, float(temperature), int(chunk),
                          bool(with_entropy))


def supports_head(model) -> bool:
    head = getattr(model, "lm_head", None)
    base = getattr(model, "model", None)
    config = getattr(model, "config", None)
    return (isinstance(head, torch.nn.Linear) and head.bias is None and base is not None
            and not getattr(config, "final_logit_softcapping", None)
            and not getattr(config, "logit_scale", None))


def fast_token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        num_completion_tokens: int, temperature: float, *,
                        completion_mask: torch.Tensor | None = None,
                        with_entropy: bool = False, compile_head: bool = False
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same contract as ``losses.token_logprobs``: input_ids, attention_mask (N, P + T) ->
    logprobs (N, T), entropy (N, T) or None. Positions where ``completion_mask`` (or, on the
    packed path, the attention mask) is 0 get 0 (the plain path gives them values that every
    caller masks out); so does a completion token with no real token before it in its row.

    Llama-family policies run the packed forward (``packed_forward``: no padding inside a row,
    maskless causal attention); other models Hugging Face's own base model. ``compile_head``
    compiles the head's soft-max arithmetic (``selected_logprobs``)."""
    t = num_completion_tokens
    targets = input_ids[:, -t:]
    keep = (torch.ones_like(targets, dtype=torch.bool) if completion_mask is None
            else completion_mask.bool())
    if packed_forward.supported(model):
        packed = packed_forward.packed_hidden_states(model, input_ids, attention_mask)
        n, width, size = packed.hidden.shape
        # The token at a column is predicted by the real token just before it in its row; a
        # row's first real token has none (an empty prompt) and is left out like padding.
        predictor = packed.rank[:, -t:] - 1
        keep = keep & attention_mask[:, -t:].bool() & (predictor >= 0)
        predictor = predictor.clamp(min=0)
        flat = (torch.arange(n, device=predictor.device)[:, None] * width + predictor)[keep]
        selected = packed.hidden.reshape(n * width, size).index_select(0, flat)
    else:
        hidden = model.model(input_ids=input_ids, attention_mask=attention_mask,
                             position_ids=position_ids_from_mask(attention_mask)
                             ).last_hidden_state[:, -(t + 1):-1]  # (N, T, H): i predicts i + 1
        selected = hidden[keep]
    logprob, entropy = selected_logprobs(selected, model.lm_head.weight, targets[keep],
                                         temperature, with_entropy=with_entropy,
                                         compiled=compile_head)
    out = torch.zeros(targets.shape, dtype=torch.float32,
                      device=targets.device).masked_scatter(keep, logprob)
    ent = None
    if with_entropy:
        ent = torch.zeros(targets.shape, dtype=torch.float32,
                          device=targets.device).masked_scatter(keep, entropy)
    return out, ent
