"""Per-step metrics, named as TRL and verl users expect.

Every step reports: reward, reward_std, rewards/<key>/mean, rewards/<key>/std,
frac_reward_zero_std, accuracy and accuracy/prompt_variance (when a 0/1 reward defines it:
the share of correct completions, and the mean over prompts of p(1 - p) for each prompt's
group accuracy p, which bounds how much a group can teach: 0 when every group is all right or
all wrong), completions/mean_length,
completions/min_length, completions/max_length, completions/clipped_ratio, kl (0 when beta
is 0: no reference model), entropy, clip_ratio/low_mean, clip_ratio/high_mean,
clip_ratio/region_mean, grad_norm, learning_rate, loss, filter/kept_fraction,
timing/rollout_s, timing/update_s, throughput/tokens_per_s (generated tokens per second of
the whole step); also rewards/<key>/disagreement for reward-model ensembles and
rollout/logprob_abs_diff (mean |sampler log-prob - trainer log-prob| per token; ~0 with the
built-in sampler, the number to watch when a faster decoder is plugged in); with
``algorithm.mask_truncated_completions`` also loss/masked_token_fraction (the share of the
trained completions' tokens left out of the loss because their completion hit max_new_tokens;
absent when the knob is off, as clip_ratio/incorrect_region_mean is without DISPO's clips);
with ``algorithm.curvature_mask`` "capo" also loss/curvature_masked_fraction (the share of the
tokens left after that which CAPO's curvature model rejected; loss/masked_token_fraction keeps
counting truncation alone);
with ``rollout.budget_allocation`` "knapsack" also rollout/group_size_mean,
rollout/group_size_min and rollout/group_size_max (completions per prompt over the step's
groups, refills included; absent with a uniform budget, where every group has
num_generations). frac_reward_zero_std is the share of groups (not completions) whose rewards
have no spread, whatever their sizes: the number Knapsack RL is meant to lower.

With ``train.log_system_metrics`` (the default) each step of a training or evaluation run also
reports the machine's state, through ``Callbacks.on_system_metrics`` (the worker stores them with
the step's metrics; DPO, SFT and reward-model training take an ``on_system_metrics`` function): system/cpu_utilization_percentage, system/system_memory_usage_megabytes,
system/system_memory_usage_percentage, system/process_rss_megabytes and, on a GPU,
system/gpu_memory_allocated_megabytes, system/gpu_max_memory_allocated_megabytes (the peak since
the process started), system/gpu_memory_reserved_megabytes and system/gpu_utilization_percentage
(with pynvml); MLflow's names and units (megabytes of 10^6 bytes, percentages 0-100), read in
``system_metrics.py``.
"""

from __future__ import annotations

import torch

from .rollout import RolloutBatch

STEP_METRICS = (
    "reward", "reward_std", "frac_reward_zero_std", "completions/mean_length",
    "completions/min_length", "completions/max_length", "completions/clipped_ratio", "kl",
    "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
    "grad_norm", "learning_rate", "filter/kept_fraction", "timing/rollout_s",
    "timing/update_s", "throughput/tokens_per_s",
)


def rollout_metrics(components: torch.Tensor, weights: torch.Tensor, keys: list[str],
                    batch: RolloutBatch, accuracy_key: str | None) -> dict[str, float]:
    """Reward and length statistics over every completion sampled this step.

    components (n, G, K) per-component rewards; weights (K,). reward_std is the mean over
    groups of the within-group std of the summed reward (how TRL reported it before 1.0; TRL
    1.16 logs the std over the whole batch, which also counts the spread between prompts).
    """
    totals = components @ weights  # (n, G)
    spread = totals.max(dim=1).values - totals.min(dim=1).values
    metrics = {
        "reward": float(totals.mean()),
        "reward_std": float(totals.std(dim=1).mean()) if totals.shape[1] > 1 else 0.0,
        "frac_reward_zero_std": float((spread <= 1e-6).float().mean()),
    }
    for k, key in enumerate(keys):
        values = components[..., k].flatten()
        metrics[f"rewards/{key}/mean"] = float(values.mean())
        metrics[f"rewards/{key}/std"] = float(values.std()) if values.numel() > 1 else 0.0
    if accuracy_key is not None:
        correct = (components[..., keys.index(accuracy_key)] == 1.0).float()  # (n, G)
        metrics["accuracy"] = float(correct.mean())
        per_prompt = correct.mean(dim=1)
        metrics["accuracy/prompt_variance"] = float((per_prompt * (1 - per_prompt)).mean())
    metrics.update(_length_metrics(batch))
    return metrics


def masked_rollout_metrics(components: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor,
                           keys: list[str], batch: RolloutBatch, accuracy_key: str | None
                           ) -> dict[str, float]:
    """rollout_metrics of groups of different sizes, padded to (n, Gmax, K) with ``valid``
    (n, Gmax) bool: every mean, std, min, max and count over valid slots only (completion
    means weigh each completion once, group means each group once), plus rollout/group_size_*.
    ``batch`` holds the valid completions only, group-major."""
    totals = components @ weights  # (n, Gmax)
    sizes = valid.sum(dim=1)
    v = valid.to(totals.dtype)
    high = torch.where(valid, totals, torch.full_like(totals, -torch.inf)).max(dim=1).values
    low = torch.where(valid, totals, torch.full_like(totals, torch.inf)).min(dim=1).values
    group_mean = (totals * v).sum(dim=1) / sizes
    group_var = (((totals - group_mean[:, None]) * v) ** 2).sum(dim=1) / (sizes - 1).clamp(min=1)
    metrics = {
        "reward": float(totals[valid].mean()),
        "reward_std": float(group_var.sqrt().mean()),
        "frac_reward_zero_std": float(((high - low) <= 1e-6).float().mean()),
    }
    for k, key in enumerate(keys):
        values = components[..., k][valid]
        metrics[f"rewards/{key}/mean"] = float(values.mean())
        metrics[f"rewards/{key}/std"] = float(values.std()) if values.numel() > 1 else 0.0
    if accuracy_key is not None:
        correct = (components[..., keys.index(accuracy_key)] == 1.0) & valid  # (n, Gmax)
        metrics["accuracy"] = float(correct.float().sum() / valid.sum())
        per_prompt = correct.float().sum(dim=1) / sizes
        metrics["accuracy/prompt_variance"] = float((per_prompt * (1 - per_prompt)).mean())
    metrics.update(_length_metrics(batch))
    metrics["rollout/group_size_mean"] = float(sizes.float().mean())
    metrics["rollout/group_size_min"] = float(sizes.min())
    metrics["rollout/group_size_max"] = float(sizes.max())
    return metrics


def _length_metrics(batch: RolloutBatch) -> dict[str, float]:
    """completions/{mean,min,max}_length and completions/clipped_ratio over the batch's rows."""
    lengths = batch.completion_mask.sum(dim=1).float()
    return {
        "completions/mean_length": float(lengths.mean()),
        "completions/min_length": float(lengths.min()),
        "completions/max_length": float(lengths.max()),
        "completions/clipped_ratio": sum(r == "length" for r in batch.finish_reasons) / len(batch.finish_reasons),
    }
