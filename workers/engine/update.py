"""One policy update from a scored rollout batch: mu optimiser steps with gradient
accumulation over micro-batches, gradient clipping, AdamW with linear warm-up.

Old log-probs are the detached log-probs of the first pass (taken before any optimiser step),
so no extra forward is spent on them; with mu == 1 the ratio is exactly 1 and only its
gradient matters.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from .chunked_logprobs import fast_token_logprobs, supports_head
from .config import AlgorithmConfig, OptimConfig
from .curvature_mask import capo_token_mask, head_adam_state
from .losses import SURROGATE_LOSSES, aggregate_loss, kl_k3, token_logprobs
from .master_weights import LOW_PRECISION, MasterWeightsAdamW
from .packed_forward import compiled_layers
from .rollout import position_ids_from_mask


@dataclass
class UpdateBatch:
    """input_ids, attention_mask (N, P + T); completion_mask (N, T); advantages (N,);
    sampling_logprobs (N, T) from the sampler, when given, are compared with the trainer's own
    (a mismatch shows a decoder that samples from a different distribution). ``correct`` (N,)
    says which completions the accuracy reward counts correct; the algorithm's clips by
    correctness need it. ``truncated`` (N,) says which completions max_new_tokens stopped
    (finish reason 'length'); ``mask_truncated_completions`` needs it."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    advantages: torch.Tensor
    sampling_logprobs: torch.Tensor | None = None
    correct: torch.Tensor | None = None  # (N,) bool, for clips by correctness (DISPO)
    truncated: torch.Tensor | None = None  # (N,) bool, for mask_truncated_completions (DAPO)

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def learning_rate_at(step: int, cfg: OptimConfig) -> float:
    """Linear warm-up over the first ``warmup_steps`` steps (step counts from 1), then lr."""
    if cfg.warmup_steps <= 0:
        return cfg.lr
    return cfg.lr * min(1.0, step / cfg.warmup_steps)


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig, *, fast: bool = False
                    ) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; ``fast`` fuses it into one kernel per step when
    every parameter is on a GPU (the CPU keeps the default implementation). Low-precision
    parameters are stepped as float32 master copies unless ``cfg.master_weights`` is off."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = fast and bool(params) and all(p.is_cuda for p in params)
    kwargs = {"lr": cfg.lr, "betas": tuple(cfg.betas), "eps": cfg.eps,
              "weight_decay": cfg.weight_decay, "fused": fused or None}
    if cfg.master_weights and any(p.dtype in LOW_PRECISION for p in params):
        return MasterWeightsAdamW(params, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


def _logprobs_fn(model, fast: bool, compile_head: bool = False):
    """The log-prob function for ``model``: the chunked one when ``fast`` and the model's head
    allows it (its soft-max compiled with ``compile_head``), else the plain full-logits one.
    Both: (model, ids, mask, T, temperature, completion_mask=, with_entropy=) ->
    (logprobs (N, T), entropy or None)."""
    if fast and supports_head(model):
        if not compile_head:
            return fast_token_logprobs

        def compiled(*args, **kwargs):
            return fast_token_logprobs(*args, compile_head=True, **kwargs)
        return compiled

    def plain(model, input_ids, attention_mask, t, temperature, *, completion_mask=None,
              with_entropy=False):
        return token_logprobs(model, input_ids, attention_mask, t, temperature,
                              with_entropy=with_entropy)
    return plain


def training_attention(device: torch.device):
    """On CUDA, attention in the update avoids cuDNN's SDPA kernel, whose backward returns NaN
    for masked batches of some lengths on H100/H200 since torch 2.11 (pytorch#196678; left
    padding masks whole query rows). Elsewhere nothing changes."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: PLC0415
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                        SDPBackend.MATH])


def _micro_batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


@torch.no_grad()
def reference_logprobs(ref_model, batch: UpdateBatch, *, temperature: float,
                       micro_batch_size: int, fast: bool = False,
                       compile_head: bool = False,
                       rows: torch.Tensor | None = None) -> torch.Tensor:
    """Log-probs (N, T) of the completions under the frozen reference model. With ``rows``
    (N,) bool only those rows get a forward pass; the others are zeros (rows the loss does
    not read, as truncated completions under ``mask_truncated_completions``)."""
    t = batch.completion_mask.shape[1]
    logprobs = _logprobs_fn(ref_model, fast, compile_head)
    if rows is None:
        parts = [logprobs(ref_model, batch.input_ids[s], batch.attention_mask[s], t,
                          temperature, completion_mask=batch.completion_mask[s])[0]
                 for s in _micro_batches(len(batch), micro_batch_size)]
        return torch.cat(parts)
    out = None
    for chunk in _row_chunks(rows, micro_batch_size, batch.input_ids.device):
        part = logprobs(ref_model, batch.input_ids[chunk], batch.attention_mask[chunk], t,
                        temperature, completion_mask=batch.completion_mask[chunk])[0]
        if out is None:
            out = part.new_zeros(batch.completion_mask.shape)
        out[chunk] = part
    return out if out is not None else torch.zeros(batch.completion_mask.shape,
                                                   device=batch.input_ids.device)


def policy_update(model, optimizer: torch.optim.Optimizer, batch: UpdateBatch, *,
                  algo: AlgorithmConfig, optim: OptimConfig, lr: float, temperature: float,
                  max_new_tokens: int, micro_batch_size: int, ref_model=None,
                  fast: bool = False, compile_head: bool = False,
                  compile_layers: bool = False) -> dict[str, float]:
    """Run ``algo.num_iterations`` optimiser steps on ``batch``; returns the update metrics
    (kl, entropy, clip_ratio/*, grad_norm, learning_rate, loss, rollout/logprob_abs_diff; with
    clips by correctness also clip_ratio/incorrect_region_mean, the share of the batch's tokens
    clipped in incorrect completions, so clip_ratio/region_mean minus it is the correct ones';
    with ``algo.mask_truncated_completions`` also loss/masked_token_fraction; with
    ``algo.curvature_mask`` 'capo' also loss/curvature_masked_fraction).

    With ``algo.mask_truncated_completions`` the truncated rows' tokens leave the mask that the
    loss, its divisors and the metrics read (TRL's ``completion_mask * ~is_truncated``); those
    rows get no forward pass at all, neither the policy's nor the reference model's. When no
    token is left, nothing is trained: no forward, no optimiser step (a step on zero gradients
    would still move the weights by AdamW's momentum and weight decay), and zeros for the loss
    metrics, as a step whose groups were all filtered out.

    Rows whose advantage is 0 add nothing to the clipped loss or its gradient, so without a
    KL term they get a single no-grad pass (for entropy) instead of forward and backward; the
    divisors still count them, so the step equals the full-batch step.

    With ``algo.curvature_mask`` 'capo' the tokens left in the mask then go through CAPO's
    curvature model (``capo_mask``) before anything is trained, and those it rejects leave the
    mask as truncated rows do (loss, divisors, metrics; rows left without a token get no
    forward); the model's weights and the optimiser's state are as before it. With 'none'
    (the default) none of this runs.

    ``fast`` computes log-probs with the chunked LM head (``chunked_logprobs``) where the model
    allows it, ``compile_head`` compiles that head's soft-max arithmetic and ``compile_layers``
    the packed forward's RMSNorms, RoPE and SwiGLU (``fused_pointwise``); the result is the
    same within
    floating-point rounding.
    """
    device = batch.input_ids.device
    with training_attention(device), compiled_layers(compile_layers):
        return _policy_update(model, optimizer, batch, algo=algo, optim=optim, lr=lr,
                              temperature=temperature, max_new_tokens=max_new_tokens,
                              micro_batch_size=micro_batch_size, ref_model=ref_model, fast=fast,
                              compile_head=compile_head)


def _policy_update(model, optimizer: torch.optim.Optimizer, batch: UpdateBatch, *,
                   algo: AlgorithmConfig, optim: OptimConfig, lr: float, temperature: float,
                   max_new_tokens: int, micro_batch_size: int, ref_model, fast: bool,
                   compile_head: bool) -> dict[str, float]:
    for group in optimizer.param_groups:
        group["lr"] = lr
    mask = batch.completion_mask.float()
    n, t = mask.shape
    masked_fraction = None
    if algo.mask_truncated_completions:
        mask, masked_fraction = mask_truncated(mask, batch.truncated)
    curvature_fraction = None
    if algo.curvature_mask == "capo":
        mask, curvature_fraction = capo_mask(model, optimizer, batch, mask, algo, lr=lr,
                                             temperature=temperature,
                                             micro_batch_size=micro_batch_size)
    masking = masked_fraction is not None or curvature_fraction is not None
    batch_tokens = float(mask.sum())
    if masking and batch_tokens == 0:  # every completion truncated, or every token rejected
        return skipped_update_metrics(algo, lr, masked_token_fraction=masked_fraction or 0.0,
                                      curvature_masked_fraction=curvature_fraction or 0.0)
    trained_rows = torch.ones(n, dtype=torch.bool)  # rows with a token in the loss's mask
    if masking:
        trained_rows = mask.sum(dim=1).cpu() > 0
    ref = None
    if algo.beta > 0 and ref_model is not None:  # masked-out rows: no forward
        ref = reference_logprobs(ref_model, batch, temperature=temperature,
                                 micro_batch_size=micro_batch_size, fast=fast,
                                 compile_head=compile_head,
                                 rows=trained_rows if masking else None)
    logprobs_of = _logprobs_fn(model, fast, compile_head)
    needs_grad = torch.ones(n, dtype=torch.bool) if ref is not None else (
        batch.advantages.cpu() != 0)
    needs_grad = needs_grad & trained_rows
    device = batch.input_ids.device
    active = _row_chunks(needs_grad, micro_batch_size, device)
    eps_low, eps_high = clips_per_row(algo, batch.correct)
    surrogate = SURROGATE_LOSSES[algo.surrogate]
    # Sums stay on the device and are read once at the end: a read per micro-batch would make
    # the host wait for the GPU before it could queue the next micro-batch's kernels.
    sums = {key: torch.zeros((), dtype=torch.float64, device=device)
            for key in ("kl", "entropy", "low", "high", "region", "region_incorrect", "loss",
                        "grad_norm", "logprob_diff")}
    model.train()
    with torch.no_grad():
        for rows in _row_chunks(~needs_grad & trained_rows, micro_batch_size, device):
            logprobs, entropy = logprobs_of(model, batch.input_ids[rows],
                                            batch.attention_mask[rows], t, temperature,
                                            completion_mask=batch.completion_mask[rows],
                                            with_entropy=True)
            _first_pass_metrics(sums, batch, rows, logprobs, entropy, mask, batch_tokens)
    old_logprobs = torch.zeros_like(mask)
    for iteration in range(algo.num_iterations):
        optimizer.zero_grad(set_to_none=True)
        for rows in active:
            logprobs, entropy = logprobs_of(model, batch.input_ids[rows],
                                            batch.attention_mask[rows], t, temperature,
                                            completion_mask=batch.completion_mask[rows],
                                            with_entropy=iteration == 0)
            m = mask[rows]
            if iteration == 0:
                old_logprobs[rows] = logprobs.detach()
                _first_pass_metrics(sums, batch, rows, logprobs, entropy, mask, batch_tokens)
            terms = surrogate(
                logprobs, old_logprobs[rows], batch.advantages[rows], m, level=algo.importance_level,
                eps_low=eps_low[rows] if isinstance(eps_low, torch.Tensor) else eps_low,
                eps_high=eps_high[rows] if isinstance(eps_high, torch.Tensor) else eps_high)
            per_token = terms.pg_loss
            if ref is not None:
                kl = kl_k3(logprobs, ref[rows])
                per_token = per_token + algo.beta * kl
                sums["kl"] += (kl.detach() * m).sum(dtype=torch.float64) / max(batch_tokens, 1.0)
            loss = aggregate_loss(per_token, m, algo.loss_aggregation,
                                  max_new_tokens=max_new_tokens, batch_tokens=batch_tokens,
                                  batch_sequences=n)
            loss.backward()
            sums["loss"] += loss.detach()
            for key, hit in (("low", terms.clipped_low), ("high", terms.clipped_high),
                             ("region", terms.clipped_region)):
                sums[key] += (hit.float() * m).sum(dtype=torch.float64) / max(batch_tokens, 1.0)
            if algo.clips_by_correctness:  # the share of all tokens clipped in incorrect completions
                wrong = (~batch.correct[rows]).float()[:, None]
                sums["region_incorrect"] += (terms.clipped_region.float() * m * wrong).sum(
                    dtype=torch.float64) / max(batch_tokens, 1.0)
        _zero_missing_grads(model)
        max_norm = optim.max_grad_norm if optim.max_grad_norm > 0 else math.inf
        sums["grad_norm"] += torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    model.eval()
    mu = algo.num_iterations
    sums = dict(zip(sums, torch.stack(list(sums.values())).tolist()))  # one read of the GPU
    metrics = {"kl": sums["kl"] / mu, "entropy": sums["entropy"],
               "clip_ratio/low_mean": sums["low"] / mu, "clip_ratio/high_mean": sums["high"] / mu,
               "clip_ratio/region_mean": sums["region"] / mu, "grad_norm": sums["grad_norm"] / mu,
               "loss": sums["loss"] / mu, "learning_rate": lr,
               "rollout/logprob_abs_diff": sums["logprob_diff"]}
    if algo.clips_by_correctness:
        metrics["clip_ratio/incorrect_region_mean"] = sums["region_incorrect"] / mu
    if masked_fraction is not None:
        metrics["loss/masked_token_fraction"] = masked_fraction
    if curvature_fraction is not None:
        metrics["loss/curvature_masked_fraction"] = curvature_fraction
    return metrics


@torch.no_grad()
def capo_mask(model, optimizer: torch.optim.Optimizer, batch: UpdateBatch, mask: torch.Tensor,
              algo: AlgorithmConfig, *, lr: float, temperature: float, micro_batch_size: int
              ) -> tuple[torch.Tensor, float]:
    """CAPO (``algo.curvature_mask`` 'capo'): ``mask`` (N, T) with the tokens whose predicted
    update leaves the trust region zeroed, and the share of ``mask``'s tokens that left it.

    One forward without gradients, rows with a token in ``mask`` only, gives the final hidden
    states; ``curvature_mask.capo_token_mask`` does the rest with the LM head's weight and
    its AdamW state as they stand before this step, and changes neither."""
    if not supports_head(model):
        raise ValueError("algorithm.curvature_mask 'capo' needs a policy whose lm_head is a "
                         "bias-free linear layer over model.model's final hidden states")
    t = mask.shape[1]
    weight = model.lm_head.weight
    state = head_adam_state(optimizer, weight)
    keep = torch.zeros_like(mask)
    for rows in _row_chunks(mask.sum(dim=1).cpu() > 0, micro_batch_size, mask.device):
        ids, attention = batch.input_ids[rows], batch.attention_mask[rows]
        hidden = model.model(input_ids=ids, attention_mask=attention,
                             position_ids=position_ids_from_mask(attention)
                             ).last_hidden_state[:, -(t + 1):-1]  # (n, T, H): i predicts i + 1
        keep[rows] = capo_token_mask(
            hidden, weight, ids[:, -t:], batch.advantages[rows], mask[rows], lr=lr,
            temperature=temperature, top_k=algo.curvature_top_k,
            kl_threshold=algo.curvature_kl_threshold,
            objective_threshold=algo.curvature_objective_threshold, state=state)
    total = float(mask.sum())
    return keep, (total - float(keep.sum())) / max(total, 1.0)


def mask_truncated(mask: torch.Tensor, truncated: torch.Tensor | None
                   ) -> tuple[torch.Tensor, float]:
    """DAPO's overlong filtering: ``mask`` (N, T) with the rows of truncated completions
    (``truncated`` (N,) bool) zeroed, and the share of the mask's tokens that left it."""
    if truncated is None:
        raise ValueError("mask_truncated_completions needs the batch's truncated flags")
    kept = mask * (~truncated.to(mask.device)).to(mask.dtype)[:, None]
    total = float(mask.sum())
    return kept, (total - float(kept.sum())) / max(total, 1.0)


def skipped_update_metrics(algo: AlgorithmConfig, lr: float, *,
                           masked_token_fraction: float = 0.0,
                           curvature_masked_fraction: float = 0.0) -> dict[str, float]:
    """The update metrics of a step that trains on nothing (every group filtered out, every
    completion truncated with ``algo.mask_truncated_completions``, or every token rejected by
    ``algo.curvature_mask``): zeros and the learning rate, with loss/masked_token_fraction
    when the algorithm masks truncated completions and loss/curvature_masked_fraction when it
    masks by curvature."""
    metrics = {"kl": 0.0, "entropy": 0.0, "clip_ratio/low_mean": 0.0,
               "clip_ratio/high_mean": 0.0, "clip_ratio/region_mean": 0.0, "grad_norm": 0.0,
               "loss": 0.0, "learning_rate": lr, "rollout/logprob_abs_diff": 0.0}
    if algo.mask_truncated_completions:
        metrics["loss/masked_token_fraction"] = masked_token_fraction
    if algo.curvature_mask != "none":
        metrics["loss/curvature_masked_fraction"] = curvature_masked_fraction
    return metrics


def clips_per_row(algo: AlgorithmConfig, correct: torch.Tensor | None
                  ) -> tuple[float | torch.Tensor, float | torch.Tensor]:
    """(eps_low, eps_high): the algorithm's numbers, or with clips by correctness (DISPO) an
    (N,) tensor of each, correct rows taking the usual clips and incorrect rows their own."""
    if not algo.clips_by_correctness:
        return algo.clip_eps_low, algo.clip_eps_high
    if correct is None:
        raise ValueError("clips by correctness need the batch's correct flags")
    right, wrong = algo.clips_for(True), algo.clips_for(False)
    low = torch.where(correct, right[0], wrong[0]).to(torch.float32)
    high = torch.where(correct, right[1], wrong[1]).to(torch.float32)
    return low, high


def _row_chunks(selected: torch.Tensor, size: int, device: torch.device
                ) -> list[torch.Tensor]:
    """Indices of the True rows of ``selected`` (N,), in chunks of at most ``size``, on
    ``device`` (moved before any work is queued: indexing a GPU tensor with host indices
    copies them from pageable memory, which waits for the GPU)."""
    rows = torch.nonzero(selected).flatten().to(device)
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def _first_pass_metrics(sums: dict[str, torch.Tensor], batch: UpdateBatch, rows: torch.Tensor,
                        logprobs: torch.Tensor, entropy: torch.Tensor | None,
                        mask: torch.Tensor, batch_tokens: float) -> None:
    m, denominator = mask[rows], max(batch_tokens, 1.0)
    if entropy is not None:
        sums["entropy"] += (entropy * m).sum(dtype=torch.float64) / denominator
    if batch.sampling_logprobs is not None:
        diff = (logprobs.detach() - batch.sampling_logprobs[rows]).abs() * m
        sums["logprob_diff"] += diff.sum(dtype=torch.float64) / denominator


def _zero_missing_grads(model) -> None:
    """Give parameters without a gradient (no row needed one) a zero gradient, so AdamW still
    steps them (momentum, weight decay) exactly as a full-batch pass would."""
    for p in model.parameters():
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)
