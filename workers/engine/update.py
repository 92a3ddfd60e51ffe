"""One policy update from a scored rollout batch: mu optimiser steps with gradient
accumulation over micro-batches, gradient clipping, AdamW with linear warm-up.

Old log-probs are the detached log-probs of the first pass (taken before any optimiser step),
so no extra forward is spent on them; with mu == 1 the ratio is exactly 1 and only its
gradient matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import AlgorithmConfig, OptimConfig
from .losses import aggregate_loss, clipped_policy_loss, kl_k3, token_logprobs


@dataclass
class UpdateBatch:
    """input_ids, attention_mask (N, P + T); completion_mask (N, T); advantages (N,)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    advantages: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def learning_rate_at(step: int, cfg: OptimConfig) -> float:
    """Linear warm-up over the first ``warmup_steps`` steps (step counts from 1), then lr."""
    if cfg.warmup_steps <= 0:
        return cfg.lr
    return cfg.lr * min(1.0, step / cfg.warmup_steps)


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                             weight_decay=cfg.weight_decay)


def _micro_batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


@torch.no_grad()
def reference_logprobs(ref_model, batch: UpdateBatch, *, temperature: float,
                       micro_batch_size: int) -> torch.Tensor:
    """Log-probs (N, T) of the completions under the frozen reference model."""
    t = batch.completion_mask.shape[1]
    parts = [token_logprobs(ref_model, batch.input_ids[s], batch.attention_mask[s], t,
                            temperature)[0] for s in _micro_batches(len(batch), micro_batch_size)]
    return torch.cat(parts)


def policy_update(model, optimizer: torch.optim.Optimizer, batch: UpdateBatch, *,
                  algo: AlgorithmConfig, optim: OptimConfig, lr: float, temperature: float,
                  max_new_tokens: int, micro_batch_size: int, ref_model=None
                  ) -> dict[str, float]:
    """Run ``algo.num_iterations`` optimiser steps on ``batch``; returns the update metrics
    (kl, entropy, clip_ratio/*, grad_norm, learning_rate, loss)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    mask = batch.completion_mask.float()
    n, t = mask.shape
    batch_tokens = float(mask.sum())
    ref = None
    if algo.beta > 0 and ref_model is not None:
        ref = reference_logprobs(ref_model, batch, temperature=temperature,
                                 micro_batch_size=micro_batch_size)
    old_logprobs = torch.zeros_like(mask)
    sums = {"kl": 0.0, "entropy": 0.0, "low": 0.0, "high": 0.0, "region": 0.0, "loss": 0.0,
            "grad_norm": 0.0}
    model.train()
    for iteration in range(algo.num_iterations):
        optimizer.zero_grad(set_to_none=True)
        for s in _micro_batches(n, micro_batch_size):
            logprobs, entropy = token_logprobs(model, batch.input_ids[s], batch.attention_mask[s],
                                               t, temperature, with_entropy=iteration == 0)
            if iteration == 0:
                old_logprobs[s] = logprobs.detach()
            m = mask[s]
            terms = clipped_policy_loss(logprobs, old_logprobs[s], batch.advantages[s], m,
                                        eps_low=algo.clip_eps_low, eps_high=algo.clip_eps_high,
                                        level=algo.importance_level)
            per_token = terms.pg_loss
            if ref is not None:
                kl = kl_k3(logprobs, ref[s])
                per_token = per_token + algo.beta * kl
                sums["kl"] += float((kl.detach() * m).sum()) / max(batch_tokens, 1.0)
            loss = aggregate_loss(per_token, m, algo.loss_aggregation,
                                  max_new_tokens=max_new_tokens, batch_tokens=batch_tokens,
                                  batch_sequences=n)
            loss.backward()
            sums["loss"] += float(loss.detach())
            for key, hit in (("low", terms.clipped_low), ("high", terms.clipped_high),
                             ("region", terms.clipped_region)):
                sums[key] += float((hit.float() * m).sum()) / max(batch_tokens, 1.0)
            if entropy is not None:
                sums["entropy"] += float((entropy * m).sum()) / max(batch_tokens, 1.0)
        max_norm = optim.max_grad_norm if optim.max_grad_norm > 0 else math.inf
        sums["grad_norm"] += float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    model.eval()
    mu = algo.num_iterations
    return {"kl": sums["kl"] / mu, "entropy": sums["entropy"],
            "clip_ratio/low_mean": sums["low"] / mu, "clip_ratio/high_mean": sums["high"] / mu,
            "clip_ratio/region_mean": sums["region"] / mu, "grad_norm": sums["grad_norm"] / mu,
            "loss": sums["loss"] / mu, "learning_rate": lr}
