"""Reward-model training on human preferences: config, records, loop, CLI.

Reads top to bottom: ``RewardModelTrainConfig`` and ``PreferenceRecord`` → validate the
data → split off held-out records → build the model → for each batch of records: rewards
of every completion ``(K, N)``, Bradley-Terry over the implied pairs or Plackett-Luce over
the rankings, one AdamW step → evaluate each epoch → save the folder that
``load_reward_model`` reads.

Metrics handed to ``on_metrics(step, metrics)`` after every optimizer step:
``loss``, ``train/accuracy`` (batch pairs ordered right by the ensemble mean; ties left
out; absent when the batch has no decisive pair), ``learning_rate``, ``grad_norm``,
``ensemble/disagreement`` (std of the K members' rewards over the batch's completions,
averaged), ``epoch``. The last step of each epoch adds the held-out ones: ``eval/loss``
(the preference loss without the centering term), ``eval/accuracy`` (held-out pairwise
accuracy, ties excluded), ``eval/ensemble/disagreement``, and the master-key probes:
``eval/probes/beat_preferred`` (share of held-out records and ``MASTER_KEY_PROBES`` where the
probe, given as the whole response to the record's prompt, scores at least as high as the
record's preferred completion; a sound reward model keeps it near 0) and
``eval/probes/worst_beat_preferred`` (the same share for the probe that fools it most).
"""

import argparse
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from workers.engine.config import (
    LR_TOO_LARGE,
    MARGIN_TOO_LARGE,
    MAX_LR,
    MAX_PAIR_MARGIN,
    MAX_SEED,
    is_cuda_index,
)
from workers.engine.errors import (
    ConfigError,
    DataError,
    TrainingDiverged,
    finite_float,
)
from workers.engine.preference_losses import (
    TIE_HANDLING,
    bradley_terry_loss,
    pairwise_accuracy,
    plackett_luce_loss,
)
from workers.engine.reward_model import BACKBONES, RewardModelScorer, build_reward_model
from workers.engine.stopping import StopCheck, StopRequested, stoppable
from workers.engine.system_metrics import progress_figures, start_cpu_window, system_metrics
from workers.engine.update import training_attention

LOSSES = ("bradley_terry", "plackett_luce")

# Content-free responses that fool reward models and LLM judges ("One Token to Fool
# LLM-as-a-Judge"): punctuation alone, and openers of reasoning with nothing after them.
MASTER_KEY_PROBES = (" ", ".", ":", "Thought process:", "Let's solve this problem step by step.",
                     "Solution", "解", "Respuesta")


@dataclass(frozen=True)
class RewardModelTrainConfig:
    """How to train a reward model; every field has a default that runs."""

    backbone: str = field(default="minilm", metadata={"help": f"one of {BACKBONES}"})
    path: str | None = field(
        default=None, metadata={"help": "backbone folder; minilm defaults to the packaged model, causal_lm needs one"}
    )
    ensemble_size: int = field(default=1, metadata={"help": "K heads on one backbone, each seeded apart"})
    bootstrap: bool = field(
        default=True, metadata={"help": "with K > 1, weight each record per member by a Poisson(1) bootstrap count"}
    )
    train_backbone: bool = field(default=True, metadata={"help": "false trains the heads only"})
    loss: str = field(default="bradley_terry", metadata={"help": f"one of {LOSSES}"})
    tie_handling: str = field(
        default="drop", metadata={"help": f"Bradley-Terry ties, one of {TIE_HANDLING}; Plackett-Luce uses Breslow"}
    )
    tie_threshold: float = field(default=1.0, metadata={"help": "Rao-Kupper log θ (> 0)"})
    margin: float = field(
        default=0.0, metadata={"help": "Bradley-Terry margin (0 to 20) for pairs whose record gives none (Plackett-Luce has none)"}
    )
    center_coef: float = field(default=0.0, metadata={"help": "λ of λ·(r_c + r_r)², e.g. 0.01"})
    lr: float = field(default=5e-5, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of steps of linear warmup, then linear decay"})
    epochs: int = field(default=1, metadata={"help": "passes over the training records"})
    batch_size: int = field(default=8, metadata={"help": "preference records per optimizer step"})
    max_length: int = field(default=512, metadata={"help": "tokens per prompt + completion, truncated beyond"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping; 0 turns it off"})
    eval_fraction: float = field(default=0.1, metadata={"help": "fraction of records held out, chosen by seed"})
    seed: int = field(default=0, metadata={"help": "heads, split, shuffle and bootstrap all follow it"})
    device: str | None = field(default=None, metadata={"help": "'cpu', 'cuda', ...; none picks cuda when present"})
    log_system_metrics: bool = field(
        default=True, metadata={"help": "report CPU, memory and GPU memory each step (system/* metrics)"}
    )

    def __post_init__(self):
        _check_types(self)
        if self.backbone not in BACKBONES:
            raise ConfigError("backbone", f"must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if self.backbone == "causal_lm" and not self.path:
            raise ConfigError("path", "a causal_lm backbone needs the folder of a local Hugging Face model")
        if self.loss not in LOSSES:
            raise ConfigError("loss", f"must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.tie_handling not in TIE_HANDLING:
            raise ConfigError("tie_handling", f"must be one of {', '.join(TIE_HANDLING)}, got {self.tie_handling!r}")
        for name in ("ensemble_size", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be at least 1, got {getattr(self, name)}")
        # far above real values: a slip (10000000000 for 10) is refused here, not met by a worker out of memory
        for name, limit in (("ensemble_size", 64), ("epochs", 10_000), ("batch_size", 65_536), ("max_length", 131_072)):
            if getattr(self, name) > limit:
                raise ConfigError(name, f"must be at most {limit:,}, got {getattr(self, name):,}")
        if self.device is not None and self.device not in ("cpu", "cuda", "mps") and not is_cuda_index(self.device):
            raise ConfigError("device", f"{self.device!r} is no device; use 'cpu', 'cuda', 'cuda:N' (N the GPU's "
                                        "number, 0 to 127), 'mps', or null for cuda when there is one")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError("seed", f"must be in [0, {MAX_SEED}] (2**32 - 1), got {self.seed}")
        if self.max_length < 8:
            raise ConfigError("max_length", f"must be at least 8 tokens, got {self.max_length}")
        for name in ("tie_threshold", "lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"must be > 0, got {getattr(self, name)}")
        if self.lr > MAX_LR:
            raise ConfigError("lr", f"{LR_TOO_LARGE}, got {self.lr:g}")
        for name in ("margin", "center_coef", "weight_decay", "max_grad_norm"):
            if not getattr(self, name) >= 0:
                raise ConfigError(name, f"must be >= 0, got {getattr(self, name)}")
        if self.margin > MAX_PAIR_MARGIN:
            raise ConfigError("margin", f"{MARGIN_TOO_LARGE}, got {self.margin:g}")
        for name in ("warmup_ratio", "eval_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(name, f"must be in [0, 1), got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, data: dict) -> "RewardModelTrainConfig":
        """A config from JSON-like data; unknown keys are refused, not ignored."""
        if not isinstance(data, dict):
            raise ConfigError("config", f"must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise ConfigError(str(key), f"unknown key; known keys: {', '.join(sorted(known))}")
        return cls(**data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_types(config: RewardModelTrainConfig) -> None:
    """ConfigError naming the field whose value has the wrong JSON type; ints given for
    float fields become floats, so ``to_dict`` always writes the same types."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        optional = f.type == (str | None)
        if optional and value is None:
            continue
        expected = str if optional else f.type
        if isinstance(value, bool) and expected is not bool:
            ok = False  # JSON true is not the number 1
        elif expected is float:
            ok = isinstance(value, (int, float))
        else:
            ok = isinstance(value, expected)
        if not ok:
            raise ConfigError(f.name, f"must be {'a finite ' if expected is float else ''}{expected.__name__}"
                                      f"{' or null' if optional else ''}, got {value!r}")  # fmt: skip
        if expected is float:
            object.__setattr__(config, f.name, finite_float(value, f.name))


@dataclass(frozen=True)
class PreferenceRecord:
    """One prompt, its completions, and a ranking of them as tiers, best first.

    ``ranking`` lists every completion index once: ``[[0], [1]]`` is 0 ≻ 1, ``[[0, 1]]`` a
    tie, ``[[2], [0, 1]]`` puts 2 above a tied 0 and 1. ``margin`` (optional) is the
    Bradley-Terry margin of this record's decisive pairs, e.g. a preference strength.
    """

    prompt: str | list[dict]
    completions: list[str]
    ranking: list[list[int]]
    margin: float | None = None


@dataclass(frozen=True)
class RewardModelTrainResult:
    output_dir: Path
    metrics: dict[str, float]
    steps: int
    stopped: bool
    # (step, system/* metrics) of each step, with log_system_metrics on; never in ``metrics``,
    # the summary saved with the model
    system_history: list[tuple[int, dict[str, float]]] = field(default_factory=list)


def ranking_pairs(ranking: Sequence[Sequence[int]]) -> list[tuple[int, int, bool]]:
    """Every pair a tiered ranking implies: ``(better, worse, False)`` across tiers and
    ``(i, j, True)`` within a tier."""
    pairs = []
    for t, tier in enumerate(ranking):
        pairs += [(i, j, True) for a, i in enumerate(tier) for j in tier[a + 1 :]]
        pairs += [(i, j, False) for i in tier for lower in ranking[t + 1 :] for j in lower]
    return pairs


def validate_preferences(records: Sequence[PreferenceRecord]) -> None:
    """DataError unless every record is well formed and some pair is decisive."""
    if not records:
        raise DataError("no preference records")
    for index, record in enumerate(records):
        _validate_record(record, index)
    if all(len(record.ranking) < 2 for record in records):
        raise DataError("every record is a tie: nothing to learn a preference from")


def _validate_record(record: PreferenceRecord, index: int) -> None:
    where = f"record {index}"
    prompt = record.prompt
    if not (isinstance(prompt, str) or isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt)):
        raise DataError(f"{where}: prompt must be a string or a list of messages")
    completions = record.completions
    if not isinstance(completions, list) or not all(isinstance(c, str) for c in completions):
        raise DataError(f"{where}: completions must be a list of strings")
    if len(completions) < 2:
        raise DataError(f"{where}: needs at least 2 completions, got {len(completions)}")
    tiers = record.ranking
    if not isinstance(tiers, list) or not all(isinstance(t, list) and t for t in tiers):
        raise DataError(f"{where}: ranking must be a list of non-empty lists of completion indices")
    placed = [i for tier in tiers for i in tier]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in placed):
        raise DataError(f"{where}: ranking must hold completion indices (integers), got {tiers}")
    if sorted(placed) != list(range(len(completions))):
        raise DataError(f"{where}: ranking must place each of the {len(completions)} completions exactly once, got {tiers}")
    if record.margin is not None and not (isinstance(record.margin, (int, float)) and record.margin >= 0):
        raise DataError(f"{where}: margin must be a number >= 0, got {record.margin!r}")
    if record.margin is not None and not record.margin <= MAX_PAIR_MARGIN:  # inf too
        raise DataError(f"{where}: margin {MARGIN_TOO_LARGE}, got {record.margin:g}")


def split_records(num_records: int, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, eval); the eval share is ``eval_fraction`` (≥ 1 record when > 0,
    never all of them), picked by a permutation seeded by ``seed``."""
    order = torch.randperm(num_records, generator=torch.Generator().manual_seed(seed)).tolist()
    num_eval = 0
    if eval_fraction > 0 and num_records > 1:
        num_eval = min(max(1, round(num_records * eval_fraction)), num_records - 1)
    return sorted(order[num_eval:]), sorted(order[:num_eval])


def planned_steps(num_records: int, config: RewardModelTrainConfig) -> int:
    num_train = len(split_records(num_records, config.eval_fraction, config.seed)[0])
    return math.ceil(num_train / config.batch_size) * config.epochs


@dataclass
class _Batch:
    """Records flattened to N completions, with their pairs (P) and tier table (B, M)."""

    prompts: list
    completions: list[str]
    chosen: Tensor  # (P,) index into the N completions
    rejected: Tensor  # (P,)
    tie: Tensor  # (P,) bool
    margin: Tensor  # (P,)
    pair_record: Tensor  # (P,) index into the B records
    item_index: Tensor  # (B, M) index into the N completions (0 under padding)
    tiers: Tensor  # (B, M) tier of each item, -1 under padding


def _collate(records: Sequence[PreferenceRecord], default_margin: float) -> _Batch:
    prompts, completions, pairs = [], [], []
    width = max(len(r.completions) for r in records)
    item_index = torch.zeros(len(records), width, dtype=torch.long)
    tiers = torch.full((len(records), width), -1, dtype=torch.long)
    for b, record in enumerate(records):
        offset = len(completions)
        prompts += [record.prompt] * len(record.completions)
        completions += record.completions
        item_index[b, : len(record.completions)] = torch.arange(offset, offset + len(record.completions))
        for t, tier in enumerate(record.ranking):
            tiers[b, tier] = t
        margin = default_margin if record.margin is None else float(record.margin)
        pairs += [(offset + i, offset + j, tie, margin, b) for i, j, tie in ranking_pairs(record.ranking)]
    chosen, rejected, tie, margin, pair_record = zip(*pairs)
    return _Batch(
        prompts, completions, torch.tensor(chosen), torch.tensor(rejected), torch.tensor(tie),
        torch.tensor(margin, dtype=torch.float32), torch.tensor(pair_record), item_index, tiers,
    )  # fmt: skip


def _preference_loss(
    rewards: Tensor, batch: _Batch, config: RewardModelTrainConfig, weights: Tensor | None, *, center: bool = True
) -> Tensor:
    """rewards ``(K, N)``, weights ``(K, B)`` or None → the configured loss, a scalar."""
    center_coef = config.center_coef if center else 0.0
    device = rewards.device
    if config.loss == "plackett_luce":
        return plackett_luce_loss(rewards[:, batch.item_index.to(device)], batch.tiers.to(device),
                                  center_coef=center_coef, weights=weights)  # fmt: skip
    return bradley_terry_loss(
        rewards[:, batch.chosen.to(device)],
        rewards[:, batch.rejected.to(device)],
        tie=batch.tie.to(device),
        margin=batch.margin.to(device),
        tie_handling=config.tie_handling,
        tie_threshold=config.tie_threshold,
        center_coef=center_coef,
        weights=None if weights is None else weights[:, batch.pair_record.to(device)],
    )


def _accuracy(rewards: Tensor, batch: _Batch) -> float | None:
    """Pairwise accuracy of the ensemble mean over the batch's decisive pairs."""
    decisive = ~batch.tie
    if not decisive.any():
        return None
    mean = rewards.detach().float().mean(0).cpu()  # (N,)
    return pairwise_accuracy(mean[batch.chosen[decisive]], mean[batch.rejected[decisive]]).item()


def _disagreement(rewards: Tensor) -> float:
    return rewards.detach().float().std(0, unbiased=False).mean().item()


def _evaluate(scorer: RewardModelScorer, records: list[PreferenceRecord], config: RewardModelTrainConfig) -> dict:
    batch = _collate(records, config.margin)
    rewards = scorer.score(batch.prompts, batch.completions, batch_size=max(2 * config.batch_size, 16))  # (K, N)
    metrics = {
        "eval/loss": _preference_loss(rewards, batch, config, None, center=False).item(),
        "eval/ensemble/disagreement": _disagreement(rewards),
    }
    accuracy = _accuracy(rewards, batch)
    if accuracy is not None:
        metrics["eval/accuracy"] = accuracy
    return {**metrics, **_probe_metrics(scorer, records, rewards, batch, config)}


def _probe_metrics(scorer: RewardModelScorer, records: list[PreferenceRecord], rewards: Tensor, batch: _Batch,
                   config: RewardModelTrainConfig) -> dict:
    """How often a master-key probe scores at least as high as the preferred completion of a
    held-out record (ensemble means), over all probes and for the worst one."""
    decisive = [b for b, r in enumerate(records) if len(r.ranking) >= 2]
    if not decisive:
        return {}
    mean = rewards.detach().float().mean(0).cpu()  # (N,)
    preferred = torch.stack([mean[batch.item_index[b, records[b].ranking[0]]].max() for b in decisive])  # (R,)
    prompts = [records[b].prompt for b in decisive for _ in MASTER_KEY_PROBES]
    probes = [probe for _ in decisive for probe in MASTER_KEY_PROBES]
    probe_scores = scorer.score(prompts, probes, batch_size=max(2 * config.batch_size, 16)).float().mean(0).cpu()
    beats = probe_scores.reshape(len(decisive), len(MASTER_KEY_PROBES)) >= preferred[:, None]  # (R, P)
    return {"eval/probes/beat_preferred": beats.float().mean().item(),
            "eval/probes/worst_beat_preferred": beats.float().mean(0).max().item()}


def _optimizer(scorer: RewardModelScorer, config: RewardModelTrainConfig, total_steps: int):
    """AdamW over the trainable parameters, with warmup then linear decay: (optimizer, scheduler, params)."""
    scorer.model.backbone.requires_grad_(config.train_backbone)
    params = [p for p in scorer.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, total_steps, config.warmup_ratio))
    return optimizer, scheduler, params


def _train_step(
    scorer: RewardModelScorer,
    batch: _Batch,
    weights: Tensor | None,
    config: RewardModelTrainConfig,
    optimizer: torch.optim.Optimizer,
    params: list[Tensor],
) -> tuple[float, Tensor, float]:
    """One AdamW step on a batch: (loss, detached rewards ``(K, N)``, grad norm before clipping)."""
    with training_attention(params[0].device):  # no cuDNN SDPA in training (see update.py)
        rewards = scorer.rewards(batch.prompts, batch.completions)  # (K, N)
        loss = _preference_loss(rewards, batch, config, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm or float("inf"))
    optimizer.step()
    return loss.item(), rewards.detach(), grad_norm.item()


def _bootstrap_weights(config: RewardModelTrainConfig, num_records: int) -> Tensor | None:
    """``(K, num_records)`` Poisson(1) counts, the online bootstrap; None without one."""
    if config.ensemble_size == 1 or not config.bootstrap:
        return None
    generator = torch.Generator().manual_seed(config.seed + 7919)
    return torch.poisson(torch.ones(config.ensemble_size, num_records), generator=generator)


def _lr_factor(step: int, total: int, warmup_ratio: float) -> float:
    """Linear warmup to 1 over ``warmup_ratio·total`` steps, then linear decay to 0."""
    warmup = math.ceil(total * warmup_ratio)
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def train_reward_model(
    config: RewardModelTrainConfig,
    preferences: Sequence[PreferenceRecord],
    *,
    output_dir: Path,
    on_metrics: Callable[[int, dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_system_metrics: Callable[[int, dict], None] | None = None,
) -> RewardModelTrainResult:
    """Train a reward model (ensemble) on ``preferences`` and save it to ``output_dir``.

    Raises DataError before any work when the data cannot train anything. Steps count
    from 1; ``should_stop()`` is asked before each step and polled (at most once a second) within
    an epoch's held-out evaluation, which a stop cuts short (the step is reported without its
    eval/ figures), and a stopped run still saves.
    ``on_system_metrics(step, metrics)`` hears the machine's state (``system_metrics.py``) each
    step, before ``on_metrics``, unless ``log_system_metrics`` is false; the result's
    ``system_history`` keeps them.
    """
    validate_preferences(preferences)
    train_ids, eval_ids = split_records(len(preferences), config.eval_fraction, config.seed)
    train_records = [preferences[i] for i in train_ids]
    eval_records = [preferences[i] for i in eval_ids]
    if all(len(r.ranking) < 2 for r in train_records):
        raise DataError("every training record is a tie after the eval split; lower eval_fraction or add data")

    corpus = [text for r in train_records for text in (_prompt_corpus(r.prompt), *r.completions)]
    scorer = build_reward_model(backbone=config.backbone, path=config.path, ensemble_size=config.ensemble_size,
                                seed=config.seed, max_length=config.max_length, device=config.device,
                                corpus=corpus)  # fmt: skip
    total_steps = math.ceil(len(train_records) / config.batch_size) * config.epochs
    optimizer, scheduler, params = _optimizer(scorer, config, total_steps)
    bootstrap = _bootstrap_weights(config, len(train_records))

    step, stopped, metrics = 0, False, {}
    system_each_step, system_history = config.log_system_metrics, []
    if system_each_step:
        start_cpu_window()
    scorer.model.train()
    stop = StopCheck(should_stop)
    for epoch in range(config.epochs):
        order = torch.randperm(len(train_records), generator=torch.Generator().manual_seed(config.seed + epoch))
        for start in range(0, len(order), config.batch_size):
            if stop():
                stopped = True
                break
            ids = order[start : start + config.batch_size]
            batch = _collate([train_records[i] for i in ids], config.margin)
            weights = None if bootstrap is None else bootstrap[:, ids].to(scorer.device)  # (K, B)
            learning_rate = scheduler.get_last_lr()[0]
            loss, rewards, grad_norm = _train_step(scorer, batch, weights, config, optimizer, params)
            scheduler.step()
            step += 1
            if not math.isfinite(loss):  # the step just taken made the weights NaN: saving them would
                raise TrainingDiverged(  # register a reward model that scores every completion NaN
                    f"training diverged at step {step}: the loss is {loss}; lower lr, margin, center_coef or "
                    "tie_threshold (nothing was saved)")

            metrics = {
                "loss": loss,
                "learning_rate": learning_rate,
                "grad_norm": grad_norm,
                "ensemble/disagreement": _disagreement(rewards),
                "epoch": epoch + (start + len(ids)) / len(order),
            }
            if (accuracy := _accuracy(rewards, batch)) is not None:
                metrics["train/accuracy"] = accuracy
            if start + config.batch_size >= len(order) and eval_records:
                try:
                    with stoppable(stop):
                        metrics.update(_evaluate(scorer, eval_records, config))
                except StopRequested:  # the step is trained: reported without eval/ figures, then the run stops
                    stopped = True
            if system_each_step and (system := system_metrics(str(scorer.device))):
                system_history.append((step, system))
                if on_system_metrics is not None:
                    on_system_metrics(step, dict(system))
            if on_metrics is not None:
                on_metrics(step, dict(metrics))
            if stopped:
                break
        if stopped:
            break

    scorer.model.eval()
    summary = {**metrics, "train/records": len(train_records), "eval/records": len(eval_records)}
    scorer.save(output_dir, training_config=config.to_dict(), metrics=summary)
    return RewardModelTrainResult(output_dir=Path(output_dir), metrics=summary, steps=step, stopped=stopped,
                                  system_history=system_history)


def _prompt_corpus(prompt: str | list[dict]) -> str:
    if isinstance(prompt, str):
        return prompt
    return " ".join(str(m.get("content", "")) for m in prompt)


def load_preferences(path: Path) -> list[PreferenceRecord]:
    """Preference records from JSONL, one object a line, either TRL style
    ``{"prompt", "chosen", "rejected"}`` or ``{"prompt", "completions", "ranking"}``;
    an optional ``"margin"`` on either, and ``"tie": true`` on a pair that is a tie (as Steer's
    export with ties writes it). A missing prompt reads as ``""``. A completion in TRL's
    conversational form, the assistant's messages (``[{"role": "assistant", "content": …}]``),
    reads as their text."""
    from .cli_config import assistant_text, jsonl_objects

    records = []
    for number, row in jsonl_objects(path, "preferences"):
        if "chosen" in row and "rejected" in row:
            # Steer's preferences.jsonl?include_ties=true marks a tied pair "tie": true
            completions, ranking = [row["chosen"], row["rejected"]], [[0, 1]] if row.get("tie") is True else [[0], [1]]
        elif "completions" in row and "ranking" in row:
            completions, ranking = row["completions"], row["ranking"]
        else:
            raise DataError(f"{path}:{number}: needs either chosen + rejected or completions + ranking")
        if isinstance(completions, list):
            completions = [assistant_text(c) for c in completions]
        record = PreferenceRecord(row.get("prompt", ""), completions, ranking, row.get("margin"))
        try:
            _validate_record(record, len(records))
        except DataError as exc:
            raise DataError(f"{path}:{number}: {str(exc).split(': ', 1)[1]}") from exc
        records.append(record)
    return records


def cli_main(argv: list[str]) -> int:
    """``python -m workers.engine train-rm --config cfg.json --output-dir out/``.

    The config JSON holds the ``RewardModelTrainConfig`` fields and ``"data": {"path": …}``
    (a relative path is read from the config file's folder). Exit codes: 0 done, 2 a bad
    config, data or backbone (one line on stderr), 130 interrupted.
    """
    from tqdm import tqdm

    if argv and argv[0] == "train-rm":
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="python -m workers.engine train-rm", description="Train a reward model.")
    parser.add_argument("--config", required=True, type=Path, help="JSON: train config + data.path")
    parser.add_argument("--output-dir", required=True, type=Path, help="folder the reward model is saved to")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    def train() -> int:
        config, data_path = _read_cli_config(args.config)
        records = load_preferences(data_path)
        validate_preferences(records)
        progress = tqdm(total=planned_steps(len(records), config), desc="train-rm", unit="step")
        system: dict[int, dict[str, str]] = {}  # a step's system figures, heard before its metrics

        def on_metrics(step: int, metrics: dict) -> None:
            progress.update(step - progress.n)
            shown = ("loss", "train/accuracy", "eval/accuracy")
            progress.set_postfix({**{k.split("/")[0][:5]: f"{metrics[k]:.3f}" for k in shown if k in metrics},
                                  **system.pop(step, {})})

        def on_system_metrics(step: int, metrics: dict) -> None:
            system[step] = progress_figures(metrics)

        with progress:
            result = train_reward_model(config, records, output_dir=args.output_dir, on_metrics=on_metrics,
                                        on_system_metrics=on_system_metrics)
        shown = {k: round(v, 4) for k, v in result.metrics.items() if k.startswith("eval/")}
        print(f"saved reward model to {result.output_dir} after {result.steps} steps {json.dumps(shown)}")
        return 0

    from .cli_config import run_cli

    return run_cli(train)


def _read_cli_config(path: Path) -> tuple[RewardModelTrainConfig, Path]:
    from .cli_config import read_cli_config

    data, data_path = read_cli_config(path)
    return RewardModelTrainConfig.from_dict(data), data_path
