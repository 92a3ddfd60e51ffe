"""The typed training config: the JSON a Run stores, validated before any work starts.

Every section is a frozen dataclass whose fields carry ``metadata={"help": ...}`` (the web
form shows it). ``TrainConfig.from_dict`` refuses unknown keys and out-of-range values with a
``ConfigError`` naming the dotted field (``"rollout.num_generations"``) and how to fix it;
``to_dict`` gives back JSON that ``from_dict`` reads to an equal config.

This module imports neither torch nor Django, so the web app can validate forms cheaply.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import ConfigError, finite_float

POLICY_SOURCES = ("builtin", "path", "tiny")
DTYPES = ("float32", "bfloat16")
ESTIMATORS = ("grpo", "rloo", "reinforce_pp", "gdpo")
SCALES = ("group", "batch", "none")
LOSS_AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")
IMPORTANCE_LEVELS = ("token", "sequence")
SURROGATES = ("ppo", "cispo")
CURVATURE_MASKS = ("none", "capo")
MAX_CURVATURE_TOP_K = 1024  # a token's support in CAPO's curvature model
DECODE_ATTENTIONS = ("auto", "sdpa", "flex")  # train.decode_attention
BUDGET_ALLOCATIONS = ("uniform", "knapsack")


def _help(text: str, *, omit_default: bool = False, **kwargs: Any) -> Any:
    """A config field with its help text. ``omit_default``: ``to_dict`` leaves the field out
    while it holds its default, so a setting added later does not change the JSON of the
    configs written before it (their stored runs, their checkpoints' train_config.json)."""
    return field(metadata={"help": text, "omit_default": omit_default}, **kwargs)


MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit; one range for every seed of a run

# Upper bounds on sizes, far above any real run's, so that a slip (1e10 for 10) is refused
# at launch with the field's name instead of filling a worker's memory until it is killed,
# beyond the reach of a cancel, which is polled between tokens and batches, not inside one allocation.
MAX_GENERATIONS = 1024  # completions per prompt
MAX_PROMPTS_PER_STEP = 8192
MAX_COMPLETIONS_PER_STEP = 65_536  # prompts_per_step x num_generations
MAX_NEW_TOKENS = 131_072  # 128k: the longest contexts of current policies
MAX_TOKENS_PER_STEP = 2**28  # completions per step x max_new_tokens (268M: 65,536 x 4,096)
MAX_STEPS = 10_000_000
MAX_ITERATIONS = 64  # updates per rollout batch (mu)
# AdamW moves each weight by about lr a step, so above 1 a run only destroys its model; and
# torch's AdamW overflowed float32 (a crash in the worker, after the launch) once lr / (1 - beta1)
# passed 3.4e38.
MAX_LR = 1.0
LR_TOO_LARGE = ("must be at most 1, e.g. 1e-6: AdamW moves each weight by about lr a step, so a larger "
                "one destroys the model")
# A Bradley-Terry margin m is a gap in reward logits that the loss -log σ(r_c - r_r - m) asks for.
# Real ones are small: Llama 2's reward model used 0.33 to 1, HelpSteer2-Preference's strengths
# are 1 to 3. At 20, σ(20) is already 1 - 2e-9, a certainty float32 cannot tell from 1 (σ(17)
# rounds to 1.0 there); a larger margin, a slip or another scale (scores 0-100), only pushes the
# rewards apart until the run diverges. So it is refused wherever a margin enters: a pair's on
# import, a label strength's, the trainer's own and a record's.
MAX_PAIR_MARGIN = 20.0
MARGIN_TOO_LARGE = "must be at most 20 (a gap in logits: σ(20) is already 1 − 2e-9)"
MAX_TINY_WIDTH = 8192  # the tiny model's hidden and MLP widths
MAX_TINY_LAYERS = 64


def _check(ok: bool, section: str, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{section}.{name}" if section else name, message)


def _at_most(value: int, limit: int, section: str, name: str) -> None:
    if value > limit:  # a JSON integer can have thousands of digits: not all of them in the message
        shown = f"{value:,}" if value < 10**30 else "an integer of more than 30 digits"
        _check(False, section, name, f"must be at most {limit:,} (got {shown})")


_CUDA_INDEX = re.compile(r"cuda:(0|[1-9][0-9]{0,2})")


def is_cuda_index(device: str) -> bool:
    """Whether ``device`` is 'cuda:N' as torch reads it: N without a leading zero or a space, and
    at most 127 (torch wraps 128 to -128 and refuses 'cuda:x' only when the worker starts)."""
    match = _CUDA_INDEX.fullmatch(device)
    return match is not None and int(match.group(1)) <= 127


def _positive_number(value: Any) -> bool:
    """A finite number > 0 (not a bool, not NaN or infinity)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def _one_of(value: Any, choices: tuple[str, ...], section: str, name: str) -> None:
    _check(value in choices, section, name,
           f"{value!r} is not one of {', '.join(map(repr, choices))}; pick one of these")


@dataclass(frozen=True)
class TinyPolicyConfig:
    """A tiny randomly initialised Llama with a character-level tokenizer (tests, demos)."""

    SECTION: ClassVar[str] = "policy.tiny"
    hidden_size: int = _help("Width of the residual stream.", default=64)
    num_layers: int = _help("Number of decoder layers.", default=2)
    num_heads: int = _help("Attention heads; must divide hidden_size.", default=4)
    intermediate_size: int = _help("Width of the MLP.", default=128)
    max_position_embeddings: int = _help("Longest prompt + completion in tokens.", default=512)
    alphabet: str | None = _help(
        "Characters the tokenizer knows (one token each); null = printable ASCII.", default=None)
    seed: int = _help("Seed of the random initialisation.", default=0)

    def __post_init__(self) -> None:
        s = self.SECTION
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position_embeddings"):
            _check(getattr(self, name) >= 1, s, name, "must be at least 1")
        for name, limit in (("hidden_size", MAX_TINY_WIDTH), ("intermediate_size", MAX_TINY_WIDTH),
                            ("num_layers", MAX_TINY_LAYERS), ("num_heads", MAX_TINY_WIDTH),
                            ("max_position_embeddings", MAX_NEW_TOKENS)):
            _at_most(getattr(self, name), limit, s, name)
        _check(self.hidden_size % self.num_heads == 0, s, "num_heads",
               f"must divide hidden_size ({self.hidden_size}); e.g. use 4")
        _check(0 <= self.seed <= MAX_SEED, s, "seed", f"must be in [0, {MAX_SEED}] (2**32 - 1)")
        _check(self.alphabet is None or len(self.alphabet) >= 1, s, "alphabet",
               "must hold at least one character, or be null for printable ASCII")


@dataclass(frozen=True)
class PolicyConfig:
    """Which model is trained."""

    SECTION: ClassVar[str] = "policy"
    source: str = _help(
        "'builtin' (a model shipped with Steer, chosen by name), 'path' (a local Hugging Face "
        "folder) or 'tiny' (a small random model for tests).", default="builtin")
    name: str = _help("Built-in model name, used when source is 'builtin'.",
                      default="smollm2-135m-instruct")
    path: str | None = _help("Local model folder, used when source is 'path'.", default=None)
    dtype: str = _help(
        "Parameter dtype: 'float32', or 'bfloat16' (half the memory, and the fast choice on a "
        "GPU; the optimiser keeps float32 master weights, see optim.master_weights).",
        default="float32")
    tiny: TinyPolicyConfig = _help("Sizes of the tiny model (source 'tiny').",
                                   default_factory=TinyPolicyConfig)

    def __post_init__(self) -> None:
        _one_of(self.source, POLICY_SOURCES, self.SECTION, "source")
        _one_of(self.dtype, DTYPES, self.SECTION, "dtype")
        if self.source == "path":
            _check(bool(self.path), self.SECTION, "path",
                   "is required when source is 'path': give the folder of a saved model")
        if self.source == "builtin":
            from .builtin_models import BUILTIN_MODELS  # noqa: PLC0415 (light, no torch)

            _check(self.name in BUILTIN_MODELS, self.SECTION, "name",
                   f"unknown built-in model {self.name!r}; known: {', '.join(BUILTIN_MODELS)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        """A policy section on its own (a judge model is named the same way); ConfigError
        names the key within it."""
        return _from_dict(cls, d, "")


@dataclass(frozen=True)
class RolloutConfig:
    """How completions are sampled."""

    SECTION: ClassVar[str] = "rollout"
    num_generations: int = _help("Completions per prompt (G); at least 2 for a group baseline.",
                                 default=8)
    prompts_per_step: int = _help("Prompts (groups) per training step.", default=4)
    max_new_tokens: int = _help("Longest completion in tokens; longer ones stop with 'length'.",
                                default=128)
    temperature: float = _help("Sampling temperature (> 0); the loss uses the same value.",
                               default=1.0)
    top_p: float = _help("Nucleus sampling mass in (0, 1]; 1 disables it.", default=1.0)
    greedy: bool = _help(
        "Decode greedily, the most likely token at each step, instead of sampling: one "
        "completion per prompt (num_generations 1), temperature and top_p unused. For "
        "evaluation runs; training samples.", default=False)
    use_chat_template: bool = _help(
        "Wrap plain-text prompts as one user message through the tokenizer's chat template. "
        "Chat prompts (lists of messages) always use it.", default=True)
    budget_allocation: str = _help(
        "'uniform': num_generations completions for every prompt. 'knapsack' (Knapsack RL, Li et "
        "al. 2025): each sampling round keeps its total (its prompts x num_generations) but "
        "shares it out by each prompt's success rate in its latest group, away from prompts "
        "always right (whose groups have no spread, so no gradient) towards those a larger "
        "group is likely to give spread: mixed ones, and always wrong ones, still worth "
        "exploring; a prompt not yet sampled gets num_generations. Needs a 0/1 "
        "accuracy reward (e.g. exact_answer).", default="uniform", omit_default=True)
    min_generations: int = _help(
        "With budget_allocation 'knapsack': the fewest completions a prompt gets (at least 2, "
        "at most num_generations).", default=2, omit_default=True)
    max_generations: int = _help(
        "With budget_allocation 'knapsack': the most completions a prompt gets (at least "
        "num_generations); 0 = 4 x num_generations, at most 1,024.", default=0, omit_default=True)

    def __post_init__(self) -> None:
        s = self.SECTION
        _one_of(self.budget_allocation, BUDGET_ALLOCATIONS, s, "budget_allocation")
        _check(self.min_generations >= 0, s, "min_generations", "must be >= 0")
        _check(self.max_generations >= 0, s, "max_generations",
               "must be >= 0 (0 = 4 x num_generations)")
        _at_most(self.min_generations, MAX_GENERATIONS, s, "min_generations")
        _at_most(self.max_generations, MAX_GENERATIONS, s, "max_generations")
        if self.knapsack:
            _check(not self.greedy, s, "budget_allocation",
                   "'knapsack' shares sampled completions out among prompts; greedy decoding "
                   "gives one per prompt: use 'uniform'")
            _check(self.min_generations >= 2, s, "min_generations",
                   f"must be at least 2 (got {self.min_generations}): a group of one completion "
                   "has no spread to learn from")
            _check(self.min_generations <= self.num_generations, s, "min_generations",
                   f"must be at most num_generations ({self.num_generations}), got "
                   f"{self.min_generations}")
            _check(self.max_generations == 0 or self.max_generations >= self.num_generations, s,
                   "max_generations", f"must be at least num_generations ({self.num_generations}),"
                   f" or 0 for 4 x num_generations; got {self.max_generations}")
        if self.greedy:
            _check(self.num_generations == 1, s, "num_generations",
                   f"must be 1 with greedy decoding (got {self.num_generations}): every "
                   "greedy completion of a prompt is the same")
        else:
            _check(self.num_generations >= 2, s, "num_generations",
                   f"must be at least 2 (got {self.num_generations}): group baselines compare "
                   "completions of the same prompt (an evaluation may decode greedily instead: "
                   "greedy true, num_generations 1)")
        _check(self.prompts_per_step >= 1, s, "prompts_per_step", "must be at least 1")
        _check(self.max_new_tokens >= 1, s, "max_new_tokens", "must be at least 1")
        _at_most(self.num_generations, MAX_GENERATIONS, s, "num_generations")
        _at_most(self.prompts_per_step, MAX_PROMPTS_PER_STEP, s, "prompts_per_step")
        _at_most(self.max_new_tokens, MAX_NEW_TOKENS, s, "max_new_tokens")
        completions = self.prompts_per_step * self.num_generations
        _check(completions <= MAX_COMPLETIONS_PER_STEP, s, "num_generations",
               f"prompts_per_step x num_generations is {completions:,} completions a step; at "
               f"most {MAX_COMPLETIONS_PER_STEP:,}")
        _check(completions * self.max_new_tokens <= MAX_TOKENS_PER_STEP, s, "max_new_tokens",
               f"{completions:,} completions a step of up to {self.max_new_tokens:,} tokens is "
               f"{completions * self.max_new_tokens:,} tokens; at most {MAX_TOKENS_PER_STEP:,} "
               "(fewer completions or shorter ones)")
        _check(self.temperature > 0, s, "temperature", "must be > 0 (use a small value, "
               "e.g. 0.1, for near-greedy sampling)")
        _check(0 < self.top_p <= 1, s, "top_p", "must be in (0, 1]")

    @property
    def knapsack(self) -> bool:
        """Whether rollouts are shared out per prompt (Knapsack RL), not num_generations each."""
        return self.budget_allocation == "knapsack"

    @property
    def max_group_size(self) -> int:
        """The most completions a prompt gets: num_generations when uniform; with knapsack,
        max_generations, or 4 x num_generations capped at MAX_GENERATIONS when that is 0."""
        if not self.knapsack:
            return self.num_generations
        return self.max_generations or min(4 * self.num_generations, MAX_GENERATIONS)


@dataclass(frozen=True)
class RewardConfig:
    """One weighted reward component; its own parameters sit beside name and weight in JSON."""

    name: str = _help("Registered component name (e.g. 'exact_answer', 'regex').")
    weight: float = _help("Weight in the summed reward. 0 scores and logs the component without "
                          "training on it: a held-out reward (say a second reward model) whose "
                          "curve shows when the trained-on rewards are being over-optimised.",
                          default=1.0)
    label: str | None = _help(
        "Name used in metrics (rewards/<label>/mean); defaults to name. Needed to tell apart "
        "two components of the same kind.", default=None)
    params: dict[str, Any] = _help("Component parameters.", default_factory=dict)
    min_group_accuracy: float | None = _help(
        "Count this component only in groups whose accuracy (share of completions the run's 0/1 "
        "accuracy reward scores 1) is at least this, in (0, 1]; in other groups every completion "
        "gets the group's best value of it, so it moves no advantage. GRPO-λ's length penalty "
        "that applies only once a group mostly answers correctly: a 'length' reward with 0.75.",
        default=None)

    def __post_init__(self) -> None:
        from .rewards import validate_reward_params  # noqa: PLC0415 (cycle: rewards uses errors)

        object.__setattr__(self, "params", validate_reward_params(self.name, self.params))
        if self.min_group_accuracy is not None:
            _check(0 < self.min_group_accuracy <= 1, "", "min_group_accuracy", "must be in (0, 1]")

    @property
    def key(self) -> str:
        return self.label or self.name

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RewardConfig:
        if not isinstance(d, dict) or "name" not in d:
            raise ConfigError("name", "each reward needs a 'name', e.g. {\"name\": \"exact_answer\"}")
        d = dict(d)
        return cls(name=_coerce(d.pop("name"), str, "name"),
                   weight=_coerce(d.pop("weight", 1.0), float, "weight"),
                   label=_coerce(d.pop("label", None), str | None, "label"),
                   min_group_accuracy=_coerce(d.pop("min_group_accuracy", None), float | None,
                                              "min_group_accuracy"),
                   params=d)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "weight": self.weight}
        if self.label is not None:
            out["label"] = self.label
        if self.min_group_accuracy is not None:
            out["min_group_accuracy"] = self.min_group_accuracy
        out.update(self.params)
        return out


@dataclass(frozen=True)
class AlgorithmConfig:
    """Advantage estimator and policy loss."""

    SECTION: ClassVar[str] = "algorithm"
    estimator: str = _help("'grpo', 'rloo', 'reinforce_pp' or 'gdpo'.", default="grpo")
    scale: str = _help(
        "Advantage scaling for grpo and rloo: 'group' (divide by the group std), 'batch' "
        "(by the batch std) or 'none' (Dr. GRPO). reinforce_pp and gdpo always batch-normalise, "
        "over completions (each completion counts once, as in ms-swift; verl and OpenRLHF weight "
        "REINFORCE++'s batch mean and std by tokens, which differs when lengths differ).",
        default="group")
    loss_aggregation: str = _help(
        "'token_mean' (DAPO), 'seq_mean_token_mean' (GRPO) or 'seq_mean_token_sum_norm' "
        "(Dr. GRPO: token sums divided by max_new_tokens).", default="token_mean")
    importance_level: str = _help(
        "'token' (PPO/GRPO ratio per token) or 'sequence' (GSPO: geometric mean per sequence).",
        default="token")
    clip_eps_low: float = _help("Lower clip: ratios below 1 - eps_low stop pushing down (with "
                                "surrogate 'cispo': the floor of a token's weight).", default=0.2)
    clip_eps_high: float = _help("Upper clip (clip-higher): ratios above 1 + eps_high stop "
                                 "pushing up (with surrogate 'cispo': the weight's cap is 1 + eps_high; "
                                 "TRL's epsilon_high for cispo is the cap itself, so ours is TRL's minus 1).",
                                 default=0.28)
    surrogate: str = _help(
        "'ppo': the clipped-ratio objective of PPO, GRPO and DAPO; a token whose ratio has left "
        "[1 - eps_low, 1 + eps_high] in the direction its advantage pushes gets no gradient, so "
        "the lower clip binds only where the advantage is negative and the upper only where it "
        "is positive. 'cispo': the clipped importance weight (no gradient through it) times the "
        "log-prob (CISPO); every token keeps its gradient, its weight held in that range "
        "whatever its advantage's sign (so 1 - eps_low is a floor under the weight of a token "
        "whose probability fell: a large eps_low, e.g. 0.99, all but removes it, as CISPO does). "
        "Clips bind only when num_iterations > 1: the first update's ratios are 1.",
        default="ppo")
    clip_eps_low_incorrect: float | None = _help(
        "DISPO: the lower clip for incorrect completions (accuracy reward not 1); null = "
        "clip_eps_low. Correct and incorrect completions, up and down: four clips, all of which "
        "bind with surrogate 'cispo' and num_iterations > 1 (with 'ppo' and a 0/1 reward alone, "
        "an incorrect completion's advantage is never positive, so its upper clip never binds).",
        default=None)
    clip_eps_high_incorrect: float | None = _help(
        "DISPO: the upper clip for incorrect completions; null = clip_eps_high.", default=None)
    beta: float = _help("KL penalty weight to the frozen initial policy (k3); 0 loads no "
                        "reference model.", default=0.0)
    num_iterations: int = _help("Updates per rollout batch (mu); old log-probs are kept from "
                                "before the first.", default=1)
    mask_truncated_completions: bool = _help(
        "DAPO's overlong filtering (TRL's mask_truncated_completions): completions stopped by "
        "rollout.max_new_tokens (finish reason 'length') are left out of the policy loss, their "
        "tokens out of its completion mask and so out of the token count of token_mean and of "
        "each sequence's own mean (a sequence mean still counts them as sequences, as TRL's). "
        "Advantages are still computed over the whole group. The update's entropy, kl and clip "
        "ratios then cover the trained tokens only; loss/masked_token_fraction logs the share "
        "left out. A step whose every completion was truncated trains nothing (no optimiser "
        "step).", default=False)
    curvature_mask: str = _help(
        "'none', or 'capo' (CAPO, Curvature-Aware Policy Optimization, Melo et al. 2025, arXiv "
        "2510.00819): before the step, each completion token's own update is predicted with a "
        "second-order model of the LM head under AdamW's moments, and tokens whose predicted KL "
        "(curvature_kl_threshold) or change of objective (curvature_objective_threshold) is too "
        "large leave the policy loss, its mask and its token counts, as truncated completions do "
        "under mask_truncated_completions; loss/curvature_masked_fraction logs the share of the "
        "remaining tokens left out (the paper: under 8 %). Costs one extra forward pass without "
        "gradients; needs a policy with a bias-free lm_head. A step with no token left trains "
        "nothing. The test is the authors' token-level one (github.com/luckeciano/stable-pg-llm); "
        "[R] Steer's adaptations (AdamW's own moments of lm_head.weight, the sampling "
        "temperature, the top-k support) are listed in docs/architecture.md.",
        default="none", omit_default=True)
    curvature_kl_threshold: float = _help(
        "With curvature_mask 'capo': a token is kept while its update's predicted KL, "
        "lr^2/2 (v.u)^2, stays below this (the authors' GRPO recipe: 1e-4).",
        default=1e-4, omit_default=True)
    curvature_objective_threshold: float = _help(
        "With curvature_mask 'capo': a token is kept while its update's predicted change of "
        "objective, lr<g, G> + lr^2/2 g'Hg, lies strictly between minus this and this (the "
        "authors' GRPO recipe: 0.01).", default=0.01, omit_default=True)
    curvature_top_k: int = _help(
        "With curvature_mask 'capo': the tokens of the vocabulary the curvature model sees at "
        "each position, the policy's most likely ones with the sampled token (the authors "
        "sample with top-k 50); 0 = the whole vocabulary.", default=50, omit_default=True)

    def __post_init__(self) -> None:
        s = self.SECTION
        _one_of(self.estimator, ESTIMATORS, s, "estimator")
        _one_of(self.scale, SCALES, s, "scale")
        _one_of(self.loss_aggregation, LOSS_AGGREGATIONS, s, "loss_aggregation")
        _one_of(self.importance_level, IMPORTANCE_LEVELS, s, "importance_level")
        _one_of(self.surrogate, SURROGATES, s, "surrogate")
        _check(0 <= self.clip_eps_low < 1, s, "clip_eps_low", "must be in [0, 1), e.g. 0.2")
        _check(self.clip_eps_high >= 0, s, "clip_eps_high", "must be >= 0, e.g. 0.28")
        _check(self.clip_eps_low_incorrect is None or 0 <= self.clip_eps_low_incorrect < 1, s,
               "clip_eps_low_incorrect", "must be in [0, 1), or null for clip_eps_low")
        _check(self.clip_eps_high_incorrect is None or self.clip_eps_high_incorrect >= 0, s,
               "clip_eps_high_incorrect", "must be >= 0, or null for clip_eps_high")
        _check(self.beta >= 0, s, "beta", "must be >= 0 (0 disables the KL penalty)")
        _check(self.num_iterations >= 1, s, "num_iterations", "must be at least 1")
        _at_most(self.num_iterations, MAX_ITERATIONS, s, "num_iterations")
        _one_of(self.curvature_mask, CURVATURE_MASKS, s, "curvature_mask")
        _check(_positive_number(self.curvature_kl_threshold), s, "curvature_kl_threshold",
               "must be a number > 0, e.g. 1e-4")
        _check(_positive_number(self.curvature_objective_threshold), s,
               "curvature_objective_threshold", "must be a number > 0, e.g. 0.01")
        _check(self.curvature_top_k >= 0, s, "curvature_top_k",
               "must be >= 0 (0 = the whole vocabulary), e.g. 50")
        _at_most(self.curvature_top_k, MAX_CURVATURE_TOP_K, s, "curvature_top_k")

    @property
    def clips_by_correctness(self) -> bool:
        """DISPO: incorrect completions have clips of their own."""
        return self.clip_eps_low_incorrect is not None or self.clip_eps_high_incorrect is not None

    def clips_for(self, correct: bool) -> tuple[float, float]:
        """(eps_low, eps_high) of a correct or an incorrect completion."""
        if correct:
            return self.clip_eps_low, self.clip_eps_high
        return (self.clip_eps_low if self.clip_eps_low_incorrect is None else self.clip_eps_low_incorrect,
                self.clip_eps_high if self.clip_eps_high_incorrect is None else self.clip_eps_high_incorrect)


@dataclass(frozen=True)
class DifficultyFilterConfig:
    """Balanced online difficulty filtering: keep prompts of intermediate group accuracy."""

    SECTION: ClassVar[str] = "filters.difficulty"
    enabled: bool = _help("Keep only groups whose accuracy lies in [p_low, p_high].",
                          default=False)
    p_low: float = _help("Lowest group accuracy kept.", default=0.1)
    p_high: float = _help("Highest group accuracy kept.", default=0.9)

    def __post_init__(self) -> None:
        _check(0 <= self.p_low <= self.p_high <= 1, self.SECTION, "p_low",
               f"need 0 <= p_low <= p_high <= 1 (got {self.p_low}, {self.p_high})")


@dataclass(frozen=True)
class FiltersConfig:
    """Which sampled groups are trained on."""

    SECTION: ClassVar[str] = "filters"
    dynamic_sampling: bool = _help("DAPO: drop groups whose rewards are all equal and sample "
                                   "more prompts to refill the batch.", default=False)
    max_refill_rounds: int = _help("Extra sampling rounds per step when filters drop groups.",
                                   default=3)
    difficulty: DifficultyFilterConfig = _help("Online difficulty filter.",
                                               default_factory=DifficultyFilterConfig)

    def __post_init__(self) -> None:
        _check(self.max_refill_rounds >= 0, self.SECTION, "max_refill_rounds", "must be >= 0")
        _at_most(self.max_refill_rounds, 100, self.SECTION, "max_refill_rounds")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then a constant learning rate."""

    SECTION: ClassVar[str] = "optim"
    lr: float = _help("Peak learning rate.", default=1e-6)
    weight_decay: float = _help("AdamW weight decay.", default=0.0)
    warmup_steps: int = _help("Steps of linear warm-up from 0 to lr.", default=0)
    max_grad_norm: float = _help("Clip the global gradient norm to this (0 disables).",
                                 default=1.0)
    betas: tuple[float, float] = _help("AdamW betas.", default=(0.9, 0.999))
    eps: float = _help("AdamW epsilon.", default=1e-8)
    master_weights: bool = _help(
        "With policy.dtype 'bfloat16': AdamW steps float32 copies of the weights and rounds "
        "the bfloat16 ones from them, since a step of about lr (1e-6) is far below "
        "bfloat16's resolution and would mostly round away. Costs 8 bytes a parameter; "
        "false steps the bfloat16 weights directly.",
        default=True)

    def __post_init__(self) -> None:
        s = self.SECTION
        _check(self.lr > 0, s, "lr", "must be > 0, e.g. 1e-6")
        _check(self.lr <= MAX_LR, s, "lr", f"{LR_TOO_LARGE} (got {self.lr:g})")
        _check(self.weight_decay >= 0, s, "weight_decay", "must be >= 0")
        _check(self.warmup_steps >= 0, s, "warmup_steps", "must be >= 0")
        _check(self.max_grad_norm >= 0, s, "max_grad_norm", "must be >= 0 (0 disables)")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), s, "betas",
               "must be two numbers in [0, 1), e.g. [0.9, 0.999]")
        _check(self.eps > 0, s, "eps", "must be > 0")


@dataclass(frozen=True)
class TrainLoopConfig:
    """Length of the run, seeding, checkpoints, devices."""

    SECTION: ClassVar[str] = "train"
    total_steps: int = _help("Training steps (numbered 1..total_steps).", default=100)
    seed: int = _help("Seeds prompt order and sampling; a resumed run repeats exactly.",
                      default=0)
    checkpoint_every: int = _help("Save a checkpoint every N steps (and at the end or on stop).",
                                  default=10)
    keep_checkpoints: int = _help("How many recent checkpoints to keep (0 keeps all).", default=2)
    log_rollouts_fraction: float = _help("Fraction of steps whose completions are reported "
                                         "to on_rollouts (chosen deterministically).", default=1.0)
    device: str = _help("'auto' (cuda if present), 'cpu', 'cuda' or 'cuda:N'.", default="auto")
    micro_batch_size: int = _help("Sequences per forward/backward in the update (memory knob; "
                                  "does not change the maths).", default=8)
    fast_path: bool = _help(
        "Steer's fast kernels for Llama/Qwen-family policies: a static-KV-cache decoder "
        "(replayed as a CUDA graph on GPU), an update forward with each row's tokens packed "
        "(maskless causal attention), the LM head's log-softmax in chunks (no float32 logits "
        "for the whole micro-batch), about half of Hugging Face's kernels per layer, and fused "
        "AdamW on GPU. Results equal the plain Hugging Face path within floating-point "
        "rounding; false uses the plain path.",
        default=True)
    compile_decoder: bool | None = _help(
        "With fast_path: torch.compile the rollout decoder's per-token step (a training "
        "run's and an evaluation run's) before it is captured (fused kernels; each run pays "
        "two compilations per cache shape, tens of seconds). "
        "Unset: on for a CUDA device with Triton and a C compiler (gcc or clang), off "
        "on a CPU. A compilation that fails logs a warning and the step runs eagerly.",
        default=None)
    decode_attention: str = _help(
        "With fast_path: the rollout decoder's attention over its KV cache. 'flex': "
        "PyTorch's FlexAttention, whose decoding kernel torch.compile generates for the step "
        "(eagerly it is an unfused reference implementation); 'sdpa': "
        "scaled_dot_product_attention with a key mask; 'auto': flex when the decoder's step "
        "is compiled on a CUDA device (compile_decoder) and the head size is a power of two "
        "from 16 (SmolLM2, Llama, Qwen), else sdpa. A flex step that fails to "
        "compile logs a warning and runs with sdpa.",
        default="auto")
    compile_head: bool = _help(
        "With fast_path: torch.compile the soft-max arithmetic of the update's chunked LM "
        "head (log-probs, entropy and their gradient read each chunk's logits in a few fused "
        "passes instead of writing a float32 copy; a few compilations per worker process, "
        "seconds each). Needs Triton on a GPU, a C++ compiler on a CPU; a compilation that "
        "fails logs a warning and the head runs eagerly.",
        default=False)
    compile_layers: bool | None = _help(
        "With fast_path: the update's RMSNorms, its split of q/k/v with RoPE, and SwiGLU, "
        "forward and backward, each as one kernel generated by torch.compile (eagerly each "
        "is three to eight passes over the layer's activations, most of the update's GPU "
        "time on SmolLM2 after the matmuls and attention). Unset: on for a "
        "CUDA device with Triton and a C compiler (gcc or clang), off on a CPU. A "
        "compilation that fails logs a warning and that function runs eagerly.",
        default=None)
    log_system_metrics: bool = _help(
        "Add the machine's state to each step's metrics, as MLflow names it: CPU utilisation, "
        "system memory and the process's resident memory, and on a GPU the memory allocated, "
        "its peak so far and the memory reserved, and the GPU's utilisation (with pynvml); "
        "charted under system/. Costs microseconds a step.",
        default=True)

    def __post_init__(self) -> None:
        s = self.SECTION
        _check(self.total_steps >= 1, s, "total_steps", "must be at least 1")
        _at_most(self.total_steps, MAX_STEPS, s, "total_steps")
        _check(0 <= self.seed <= MAX_SEED, s, "seed", f"must be in [0, {MAX_SEED}] (2**32 - 1)")
        _check(self.checkpoint_every >= 1, s, "checkpoint_every", "must be at least 1")
        _check(self.keep_checkpoints >= 0, s, "keep_checkpoints", "must be >= 0 (0 keeps all)")
        _check(0 <= self.log_rollouts_fraction <= 1, s, "log_rollouts_fraction",
               "must be in [0, 1]")
        _check(self.device in ("auto", "cpu", "cuda") or is_cuda_index(self.device), s,
               "device", f"{self.device!r} is no device; use 'auto', 'cpu', 'cuda' or 'cuda:N' "
               "(N the GPU's number, 0 to 127, e.g. 'cuda:0')")
        _check(self.micro_batch_size >= 1, s, "micro_batch_size", "must be at least 1")
        _at_most(self.micro_batch_size, MAX_COMPLETIONS_PER_STEP, s, "micro_batch_size")
        _one_of(self.decode_attention, DECODE_ATTENTIONS, s, "decode_attention")


@dataclass(frozen=True)
class EvalConfig:
    """Periodic evaluation of held-out prompts with the run's 0/1 accuracy reward (exact_answer
    when it has none): greedy pass@1 and sampled pass@k."""

    SECTION: ClassVar[str] = "eval"
    every_steps: int = _help("Evaluate every N steps, and at the last, when eval prompts are "
                             "given (0 = never).", default=0)
    num_samples: int = _help("Samples per prompt (n) for pass@k.", default=4)
    k: int = _help("k of pass@k; at most num_samples.", default=4)
    temperature: float = _help("Sampling temperature for pass@k.", default=1.0)
    max_new_tokens: int | None = _help("Completion cap; null = rollout.max_new_tokens.",
                                       default=None)

    def __post_init__(self) -> None:
        s = self.SECTION
        _check(self.every_steps >= 0, s, "every_steps", "must be >= 0")
        _check(self.num_samples >= 1, s, "num_samples", "must be at least 1")
        _at_most(self.num_samples, MAX_GENERATIONS, s, "num_samples")
        _check(1 <= self.k <= self.num_samples, s, "k",
               f"must be in [1, num_samples={self.num_samples}]")
        _check(self.temperature > 0, s, "temperature", "must be > 0")
        _check(self.max_new_tokens is None or self.max_new_tokens >= 1, s, "max_new_tokens",
               "must be at least 1 or null")
        _at_most(self.max_new_tokens or 1, MAX_NEW_TOKENS, s, "max_new_tokens")


@dataclass(frozen=True)
class DataConfig:
    """Where the CLI reads prompts from (the web app passes prompts directly)."""

    SECTION: ClassVar[str] = "data"
    path: str | None = _help("JSONL file of {\"prompt\": ..., \"reference\": ...} lines.",
                             default=None)


def _default_rewards() -> tuple[RewardConfig, ...]:
    return (RewardConfig(name="exact_answer", weight=1.0),)


@dataclass(frozen=True)
class TrainConfig:
    """A whole RL run. Build from JSON with ``from_dict``; ``to_dict`` gives the JSON back."""

    policy: PolicyConfig = _help("The model trained.", default_factory=PolicyConfig)
    rollout: RolloutConfig = _help("Sampling.", default_factory=RolloutConfig)
    rewards: tuple[RewardConfig, ...] = _help("Weighted reward components (at least one).",
                                              default_factory=_default_rewards)
    algorithm: AlgorithmConfig = _help("Advantages and loss.", default_factory=AlgorithmConfig)
    filters: FiltersConfig = _help("Group filters.", default_factory=FiltersConfig)
    optim: OptimConfig = _help("Optimiser.", default_factory=OptimConfig)
    train: TrainLoopConfig = _help("Loop, seed, checkpoints.", default_factory=TrainLoopConfig)
    eval: EvalConfig = _help("Evaluation.", default_factory=EvalConfig)
    data: DataConfig = _help("Prompt file for the CLI.", default_factory=DataConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rewards", tuple(self.rewards))
        if not self.rewards:
            raise ConfigError("rewards", "add at least one reward component, e.g. "
                                         "[{\"name\": \"exact_answer\"}]")
        seen: set[str] = set()
        for i, reward in enumerate(self.rewards):
            if reward.key in seen:
                raise ConfigError(f"rewards[{i}].label", f"two components are called "
                                  f"{reward.key!r}; give one a distinct 'label'")
            seen.add(reward.key)
        if self.filters.difficulty.enabled and self.accuracy_reward is None:
            raise ConfigError("filters.difficulty.enabled", "needs a 0/1 reward such as "
                              "exact_answer to measure group accuracy")
        for name in ("clip_eps_low_incorrect", "clip_eps_high_incorrect"):
            if getattr(self.algorithm, name) is not None and self.accuracy_reward is None:
                raise ConfigError(f"algorithm.{name}", "needs a 0/1 reward such as exact_answer "
                                  "to tell correct completions from incorrect ones")
        for i, reward in enumerate(self.rewards):
            if reward.min_group_accuracy is None:
                continue
            if self.accuracy_reward is None:
                raise ConfigError(f"rewards[{i}].min_group_accuracy", "needs a 0/1 reward such as "
                                  "exact_answer to measure group accuracy")
            if reward.key == self.accuracy_reward:
                raise ConfigError(f"rewards[{i}].min_group_accuracy", f"{reward.key!r} is the "
                                  "accuracy reward itself; gate another component by it")
        if self.rollout.knapsack:
            if self.accuracy_reward is None:
                raise ConfigError("rollout.budget_allocation", "'knapsack' shares completions out "
                                  "by each prompt's success rate: it needs a 0/1 reward such as "
                                  "exact_answer to measure it")
            for i, reward in enumerate(self.rewards):
                if reward.name == "tournament":
                    raise ConfigError("rollout.budget_allocation", f"'knapsack' gives prompts "
                                      f"groups of different sizes, and the tournament of "
                                      f"rewards[{i}] ranks a group by a bracket made for one "
                                      "size (its rewards would not mean the same across "
                                      "groups): use 'uniform' with a tournament")
        for i, reward in enumerate(self.rewards):
            if reward.name == "tournament" and self.rollout.num_generations < 2:
                raise ConfigError(f"rewards[{i}].name", "a tournament ranks the completions of "
                                  "one prompt against each other: set rollout.num_generations "
                                  "to at least 2")

    @property
    def accuracy_reward(self) -> str | None:
        """Key of the 0/1 reward that defines accuracy: the first exact_answer or math_verify
        (whatever its weight: a weight-0 one is how a run trained on a reward model measures real
        accuracy), else the first binary component trained on, else the first binary one;
        None when the run has none."""
        from .rewards import REFERENCE_REWARDS, REWARDS  # noqa: PLC0415

        binary = [r for r in self.rewards if REWARDS[r.name].binary]
        for reward in [r for r in binary if r.name in REFERENCE_REWARDS] + [r for r in binary if r.weight] + binary:
            return reward.key
        return None

    @property
    def held_out_reward(self) -> RewardConfig:
        """The 0/1 reward that scores held-out prompts (eval/greedy_pass@1, eval/pass@k): the
        accuracy reward, or exact_answer against each prompt's reference when the run has none."""
        key = self.accuracy_reward
        return next((r for r in self.rewards if r.key == key), None) or RewardConfig(name="exact_answer")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build and validate; raises ConfigError naming the dotted field on any problem."""
        return _from_dict(cls, d, "")

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


def check_trainable(config: TrainConfig | dict[str, Any]) -> None:
    """ConfigError when ``config`` (a TrainConfig, or its JSON before validation, so that this
    reason comes before greedy's other rules) cannot train: a policy update needs sampled
    groups, so greedy decoding (which evaluation runs may use) is refused."""
    if isinstance(config, dict):
        rollout = config.get("rollout")
        greedy = isinstance(rollout, dict) and rollout.get("greedy") is True
    else:
        greedy = config.rollout.greedy
    if greedy:
        raise ConfigError("rollout.greedy", "training samples completions (a group of "
                          "num_generations per prompt); greedy decoding is for evaluation runs")


def check_evaluable(config: TrainConfig) -> None:
    """ConfigError when ``config`` cannot score an evaluation run: a tournament ranks a group's
    completions against each other, so its mean is 0.5 whatever the policy answers; and an
    evaluation samples num_generations of every prompt, so a knapsack budget would be ignored."""
    if config.rollout.knapsack:
        raise ConfigError("rollout.budget_allocation", "an evaluation samples num_generations "
                          "completions of every prompt; 'knapsack' shares a training run's "
                          "completions out by what it learns: use 'uniform'")
    for i, reward in enumerate(config.rewards):
        if reward.name == "tournament":
            raise ConfigError(f"rewards[{i}].name", "a tournament ranks each prompt's completions "
                              "against each other, so its mean is 0.5 whatever the policy; it "
                              "cannot score an evaluation (to compare two policies, put their "
                              "answers side by side for annotators)")


def evaluation_steps(num_prompts: int, prompts_per_step: int) -> int:
    """How many steps an evaluation of ``num_prompts`` takes (here, torch-free: the web app counts
    an evaluation's steps at launch)."""
    return math.ceil(num_prompts / prompts_per_step)


def default_config_dict() -> dict[str, Any]:
    """The defaults as JSON (a run that works out of the box with the built-in model)."""
    return TrainConfig().to_dict()


def every_default_dict() -> dict[str, Any]:
    """``default_config_dict`` with the settings ``to_dict`` leaves out at their default too
    (``_help(omit_default=True)``): every setting a form or a sweep can name, with its default."""
    return _to_dict(TrainConfig(), omit_defaults=False)


def config_errors(d: dict[str, Any], *, limit: int = 20) -> list[ConfigError]:
    """Every independent problem of a config, not only the first that ``from_dict`` raises.

    After each error the offending value goes back to its default (an unknown key is dropped)
    and the config is checked again, so a form can mark all its bad fields in one answer.
    Stops at a problem it cannot set aside (then the list ends with it). [] means valid.
    """
    import copy  # noqa: PLC0415

    trial, defaults, errors = copy.deepcopy(d), default_config_dict(), []
    for _ in range(limit):
        try:
            TrainConfig.from_dict(trial)
            return errors
        except ConfigError as exc:
            errors.append(exc)
            if not _set_aside(trial, defaults, exc.field) or [e.field for e in errors].count(exc.field) > 1:
                return errors
    return errors


def _set_aside(trial: dict[str, Any], defaults: dict[str, Any], dotted: str) -> bool:
    """Put the value at ``dotted`` (``a.b``, ``rewards[1].weight``) back to its default; False if impossible."""
    parts = dotted.replace("[", ".").replace("]", "").split(".")
    if parts[0] == "rewards" and len(parts) > 1 and parts[1].isdigit():  # a bad component: a default one in its place
        rewards, index = trial.get("rewards"), int(parts[1])
        stand_in = {**defaults["rewards"][0], "label": f"set-aside-{index}"}  # a label no other row has
        if not isinstance(rewards, list) or index >= len(rewards) or rewards[index] == stand_in:
            return False
        rewards[index] = stand_in
        return True
    node, default = trial, defaults
    for part in parts[:-1]:
        key: Any = int(part) if part.isdigit() else part
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return False
        default = default.get(key) if isinstance(default, dict) else None
    last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        del node[last]
        return True
    if not isinstance(node, dict) or last not in node:
        return False
    if isinstance(default, dict) and last in default:
        node[last] = default[last]
    else:
        del node[last]
    return True


def config_field_help() -> dict[str, str]:
    """Dotted field name -> help text, for forms and docs."""
    return field_help(TrainConfig)


def field_help(config_class: type) -> dict[str, str]:
    """Dotted field name -> help text of a config dataclass and its nested sections."""
    out: dict[str, str] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            out[prefix + f.name] = f.metadata.get("help", "")
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], prefix + f.name + ".")

    walk(config_class, "")
    return out


# --- generic (de)serialisation -------------------------------------------------------------

def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (ints pass as floats, lists as tuples)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(exc.message)
        raise ConfigError(where, errors[0] if errors else f"expected one of {tp}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(where, f"expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(value)
        if len(value) != len(args):
            raise ConfigError(where, f"expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(where, f"expected an object, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(where, f"expected a number, got {value!r}")
        return finite_float(value, where)
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or
                                           (isinstance(value, float) and value.is_integer())):
            raise ConfigError(where, f"expected a whole number, got {value!r}")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(where, f"expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(where, f"expected a string, got {value!r}")
        return value
    raise ConfigError(where, f"cannot read a {_type_name(tp)}")


def _prefixed(exc: ConfigError, prefix: str) -> ConfigError:
    if prefix and not exc.field.startswith(prefix):
        return ConfigError(prefix + exc.field, exc.message)
    return exc


def _from_dict(cls: type, d: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "config"
    if not isinstance(d, dict):
        raise ConfigError(where, f"expected an object, got {d!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(prefix + unknown[0], f"unknown key; known keys here: "
                          f"{', '.join(fields)} (check the spelling)")
    kwargs: dict[str, Any] = {}
    for name, value in d.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _from_dict(tp, value, f"{prefix}{name}.")
        elif cls is TrainConfig and name == "rewards":
            kwargs[name] = _rewards_from_list(value)
        else:
            kwargs[name] = _coerce(value, tp, prefix + name)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise _prefixed(exc, prefix) from None


def _rewards_from_list(value: Any) -> tuple[RewardConfig, ...]:
    if not isinstance(value, list):
        raise ConfigError("rewards", "expected a list of reward components")
    out = []
    for i, item in enumerate(value):
        try:
            out.append(RewardConfig.from_dict(item))
        except ConfigError as exc:
            raise ConfigError(f"rewards[{i}].{exc.field}", exc.message) from None
    return tuple(out)


def _to_dict(obj: Any, *, omit_defaults: bool = True) -> Any:
    if isinstance(obj, RewardConfig):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_dict(getattr(obj, f.name), omit_defaults=omit_defaults)
                for f in dataclasses.fields(obj)
                if not (omit_defaults and f.metadata.get("omit_default")
                        and getattr(obj, f.name) == f.default)}
    if isinstance(obj, (tuple, list)):
        return [_to_dict(v, omit_defaults=omit_defaults) for v in obj]
    return obj
