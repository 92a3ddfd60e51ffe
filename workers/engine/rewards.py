"""Reward components: named, weighted, plain callables.

Each component follows TRL's reward-function interface::

    fn(prompts, completions, references, **params) -> list[float]

``prompts`` are the original prompts (text or chat messages), ``completions`` the decoded
completions, ``references`` the reference answers (or None). The trainer also passes the
context keywords ``completion_lengths`` (tokens) and ``device``; components ignore what they do
not need. Parameters come from the config and are data: patterns are compiled, never run as
code. ``REWARDS`` maps a config name to its component.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import regex as rx  # not `regex`: the reward of that name is defined below

from .errors import ConfigError, EngineError, finite_float
from .math_equivalence import answer_matches, math_verify_missing, parse_reference
from .stopping import check_stop

MAX_PATTERN_CHARS = 512
MAX_MATCH_INPUT_CHARS = 20_000
# A user's pattern can backtrack for ages ('(a|a)*b' on forty a's: minutes with re, years with
# sixty), inside one match, which a cancel cannot interrupt. Patterns run on the `regex` module (re's
# syntax, VERSION0), which avoids much of that backtracking and stops a match past this timeout.
PATTERN_TIMEOUT_S = 2.0
_REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """One parameter of a component: accepted types, default, help and a range check."""

    types: tuple[type, ...]
    default: Any = _REQUIRED
    help: str = ""
    check: Callable[[Any], str | None] | None = None  # returns an error message or None


@dataclass(frozen=True)
class RewardComponent:
    name: str
    fn: Callable[..., list[float]]
    params: dict[str, Param]
    binary: bool  # values are 0/1, so it can define accuracy
    help: str
    # Optional variant returning (values, extra metrics), e.g. ensemble disagreement.
    fn_with_metrics: Callable[..., tuple[list[float], dict[str, float]]] | None = None
    nested_criteria: bool = False
    # What is missing where the engine runs (an optional package), as a message; None if nothing.
    unavailable: Callable[[], str | None] | None = None


REWARDS: dict[str, RewardComponent] = {}
# Components that compare a completion with its prompt's reference answer: a run with one refuses
# prompts without a reference (each would score 0), and the first is the run's accuracy reward.
REFERENCE_REWARDS = ("exact_answer", "math_verify")


def reference_reward(names: Sequence[str]) -> str | None:
    """The first of the reward ``names`` that needs every prompt's reference answer, or None."""
    return next((name for name in names if name in REFERENCE_REWARDS), None)


def register(name: str, *, params: dict[str, Param], binary: bool, help: str,
             fn_with_metrics: Callable[..., tuple[list[float], dict[str, float]]] | None = None,
             unavailable: Callable[[], str | None] | None = None):
    def wrap(fn: Callable[..., list[float]]) -> Callable[..., list[float]]:
        REWARDS[name] = RewardComponent(name=name, fn=fn, params=params, binary=binary,
                                        help=help, fn_with_metrics=fn_with_metrics,
                                        nested_criteria=name == "checklist",
                                        unavailable=unavailable)
        return fn
    return wrap


# --- validation ----------------------------------------------------------------------------

def validate_reward_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check a component's parameters; returns them type-normalised (ints as floats where a
    float is expected). Raises ConfigError(field=<param>) with the fix."""
    if name not in REWARDS:
        raise ConfigError("name", f"unknown reward {name!r}; known rewards: "
                          f"{', '.join(sorted(REWARDS))}")
    component = REWARDS[name]
    if component.unavailable is not None and (missing := component.unavailable()):
        raise ConfigError("name", f"reward {name!r} {missing}")
    out: dict[str, Any] = {}
    unknown = sorted(set(params) - set(component.params))
    if unknown:
        known = ", ".join(["name", "weight", "label", *component.params]) or "none"
        raise ConfigError(unknown[0], f"unknown parameter for reward {name!r}; known: {known}")
    for key, spec in component.params.items():
        if key not in params:
            if spec.default is _REQUIRED:
                raise ConfigError(key, f"reward {name!r} needs {key!r}: {spec.help}")
            continue
        value = params[key]
        if float in spec.types and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = finite_float(value, key)
        if isinstance(value, bool) and bool not in spec.types or \
                not isinstance(value, spec.types):
            names = " or ".join(t.__name__ for t in spec.types)
            raise ConfigError(key, f"expected {names}, got {value!r}")
        if spec.check is not None and (message := spec.check(value)):
            raise ConfigError(key, message)
        out[key] = value
    if component.nested_criteria:
        out["criteria"] = _validate_criteria(out["criteria"])
    return out


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be > 0"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _choice(*choices: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"{v!r} is not one of {', '.join(choices)}"


_NESTED_QUANTIFIER = re.compile(r"[+*?}]\)[+*{]")
_REGEX_FLAGS = {"IGNORECASE": rx.IGNORECASE, "MULTILINE": rx.MULTILINE, "DOTALL": rx.DOTALL}


class PatternTimeout(EngineError):
    """A reward's regular expression ran past PATTERN_TIMEOUT_S on one completion."""


def _check_pattern(pattern: str) -> str | None:
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"pattern is {len(pattern)} characters; the limit is {MAX_PATTERN_CHARS}"
    if _NESTED_QUANTIFIER.search(pattern):
        return ("a quantified group ends in a quantifier (like '(a+)+'), which can take "
                "exponential time; rewrite it without the nested repetition")
    try:
        rx.compile(pattern, rx.VERSION0)  # as the worker compiles it
    except (rx.error, ValueError, OverflowError) as exc:
        return f"not a valid regular expression: {exc}"
    return None


def _check_flags(flags: list) -> str | None:
    bad = [f for f in flags if not isinstance(f, str) or f not in _REGEX_FLAGS]  # [[1]] is unhashable
    return f"unknown flags {bad}; use {', '.join(_REGEX_FLAGS)}" if bad else None


# --- exact answer --------------------------------------------------------------------------

_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+(?:\.\d+)?)?")
_ANSWER_IS = re.compile(r"answer\s*(?:is|:|=)\s*:?\s*(.+)", re.IGNORECASE)
_FRAC = re.compile(r"\\d?frac\{([^{}]*)\}\{([^{}]*)\}")


def _last_braced(text: str, command: str) -> str | None:
    start = text.rfind(command + "{")
    if start < 0:
        return None
    i, depth = start + len(command) + 1, 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a completion: ``\\boxed{}``, then ``#### x``, then "answer is x",
    else the last number; None when there is nothing answer-like."""
    text = text[-MAX_MATCH_INPUT_CHARS:]
    boxed = _last_braced(text, "\\boxed")
    if boxed is not None:
        return boxed.strip()
    if "####" in text:
        after = text.rsplit("####", 1)[1].strip()
        if after:
            return after.splitlines()[0].strip()
    matches = _ANSWER_IS.findall(text)
    if matches:
        return matches[-1].splitlines()[0].strip()
    numbers = _NUMBER.findall(_FRAC.sub(r"\1/\2", text))
    return numbers[-1].strip() if numbers else None


def _to_number(text: str) -> float | None:
    text = _FRAC.sub(r"(\1)/(\2)", text)
    text = text.replace("$", "").replace("\\%", "").replace("%", "").replace("(", "").replace(")", "")
    match = _NUMBER.search(text)
    if match is None:
        return None
    token = match.group(0).replace(",", "").replace(" ", "")
    try:
        if "/" in token:
            num, den = token.split("/")
            return float(num) / float(den) if float(den) != 0 else None
        return float(token)
    except ValueError:
        return None


def _exact_number(text: str) -> float | None:
    """The number ``text`` is, when it is nothing but a number (commas, $, % allowed)."""
    compact = re.sub(r"[\s$,]|\\?%", "", _FRAC.sub(r"\1/\2", text)).rstrip(".")
    return _to_number(compact) if _NUMBER.fullmatch(compact) else None


def _normalise_text(text: str) -> str:
    text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\s+", " ", text.replace("$", "")).strip().lower()
    return text.rstrip(".")


def answers_match(predicted: str | None, reference: str | None, tolerance: float = 1e-6) -> bool:
    """Compare an extracted answer with a reference: numerically (commas, $, % and fractions
    normalised; relative or absolute tolerance) when the reference is a number, else as
    normalised text. A GSM8K-style reference ("... #### 72") is reduced to its answer first."""
    if predicted is None or reference is None:
        return False
    if "####" in reference:
        reference = reference.rsplit("####", 1)[1]
    ref_num = _exact_number(reference)
    if ref_num is not None:
        pred_num = _to_number(predicted)
        return pred_num is not None and math.isclose(pred_num, ref_num, rel_tol=tolerance,
                                                     abs_tol=tolerance)
    return _normalise_text(predicted) == _normalise_text(reference)


@register("exact_answer", binary=True, help="1 when the final answer equals the reference.",
          params={"tolerance": Param((float,), 1e-6, "numeric tolerance (relative or "
                                     "absolute)", _non_negative)})
def exact_answer(prompts, completions, references, *, tolerance: float = 1e-6, **_) -> list[float]:
    refs = references if references is not None else [None] * len(completions)
    return [float(answers_match(extract_answer(c), r, tolerance)) for c, r in zip(completions, refs)]


# --- math answers, compared symbolically ---------------------------------------------------

def _check_timeout(value: int) -> str | None:
    return None if 1 <= value <= 600 else "must be between 1 and 600 seconds"


@register("math_verify", binary=True, unavailable=math_verify_missing,
          help="1 when the final answer is mathematically the reference, by Hugging Face's "
          "math-verify (as TRL's accuracy_reward): \\frac{\\sqrt{2}}{2} is \\sqrt{2}/2, (x+1)^2 is "
          "x^2+2x+1, \\{1,2\\} is \\{2,1\\}, intervals, tuples, degrees and units. The answer is "
          "the last \\boxed{}, else LaTeX after 'the final answer is', else the last plain "
          "expression; the reference is LaTeX, with or without $...$ or \\boxed{}, or GSM8K's "
          "'... #### 72'. The answer's LaTeX must be well formed (\\frac12 is not read, as in "
          "TRL). A reference in which math-verify finds no mathematics (words such as 'Paris', "
          "malformed LaTeX) is compared as exact_answer compares it; a missing one scores 0. "
          "Needs the math-verify package where the engine runs.",
          params={"timeout_s": Param((int,), 5, "seconds allowed: in the main thread (the CLI, "
                                     "a Celery worker) math-verify's own alarm stops each parse and "
                                     "each comparison after it, so an item takes at most about three "
                                     "times this; in another thread, where "
                                     "alarms cannot be set, the item is given up after it and "
                                     "scores 0. Inputs are cut to their last 20,000 characters, "
                                     "and an answer with a number of over 10,000 digits "
                                     "(10^{10^{10}}) scores 0 without being computed",
                                     _check_timeout)})
def math_verify(prompts, completions, references, *, timeout_s: int = 5, **_) -> list[float]:
    """N completions and their N references (or None) -> N values, 1.0 when the final answer is
    equivalent to the reference; a reference without mathematics falls back to answers_match."""
    refs = references if references is not None else [None] * len(completions)
    golds: dict[str, list] = {}  # a group's completions share their prompt's reference
    out = []
    for completion, reference in zip(completions, refs):
        check_stop()  # each can take up to timeout_s
        if reference is None:
            out.append(0.0)
            continue
        if reference not in golds:
            golds[reference] = parse_reference(reference, timeout_s)
        if golds[reference]:
            out.append(float(answer_matches(golds[reference], completion, timeout_s)))
        else:
            out.append(float(answers_match(extract_answer(completion), reference)))
    return out


# --- format and checklist criteria ---------------------------------------------------------

@functools.lru_cache(maxsize=256)
def _compiled(pattern: str, flags: tuple[str, ...]) -> rx.Pattern:
    value = rx.VERSION0
    for name in flags:
        value |= _REGEX_FLAGS[name]
    return rx.compile(pattern, value)


def _regex_hit(text: str, pattern: str, mode: str, flags: Sequence[str]) -> bool:
    """Whether ``pattern`` matches; PatternTimeout (the run fails saying so) rather than a step
    that backtracks for hours."""
    compiled = _compiled(pattern, tuple(flags))
    text = text[:MAX_MATCH_INPUT_CHARS]
    try:
        if mode == "fullmatch":
            hit = compiled.fullmatch(text.strip(), timeout=PATTERN_TIMEOUT_S)
        else:
            hit = compiled.search(text, timeout=PATTERN_TIMEOUT_S)
    except TimeoutError:
        raise PatternTimeout(f"the regular expression {pattern!r} ran for more than {PATTERN_TIMEOUT_S:g} s on one "
                             "completion (it backtracks without end on some texts, e.g. '(a|a)*'); rewrite it "
                             "with fewer alternatives that can match the same text") from None
    return hit is not None


_REGEX_PARAMS = {
    "pattern": Param((str,), help="regular expression (Python syntax)", check=_check_pattern),
    "mode": Param((str,), "search", "'search' (anywhere) or 'fullmatch' (whole completion, "
                  "surrounding whitespace ignored)", _choice("search", "fullmatch")),
    "flags": Param((list,), [], "any of IGNORECASE, MULTILINE, DOTALL", _check_flags),
}


@register("regex", binary=True, help="1 when the completion matches a pattern.",
          params=_REGEX_PARAMS)
def regex(prompts, completions, references, *, pattern: str, mode: str = "search",
          flags: Sequence[str] = (), **_) -> list[float]:
    return [float(_regex_hit(c, pattern, mode, flags)) for c in completions]


_TEXT_PARAMS = {
    "text": Param((str,), help="text to look for"),
    "case_sensitive": Param((bool,), True, "match case exactly"),
}


def _contains(completion: str, text: str, case_sensitive: bool) -> bool:
    return text in completion if case_sensitive else text.lower() in completion.lower()


@register("contains", binary=True, help="1 when the completion contains a text.",
          params=_TEXT_PARAMS)
def contains(prompts, completions, references, *, text: str, case_sensitive: bool = True,
             **_) -> list[float]:
    return [float(_contains(c, text, case_sensitive)) for c in completions]


@register("not_contains", binary=True, help="1 when the completion does not contain a text.",
          params=_TEXT_PARAMS)
def not_contains(prompts, completions, references, *, text: str, case_sensitive: bool = True,
                 **_) -> list[float]:
    return [float(not _contains(c, text, case_sensitive)) for c in completions]


@register("max_length", binary=True, help="1 when the completion has at most max_chars "
          "characters.", params={"max_chars": Param((int,), help="character limit",
                                                    check=_positive)})
def max_length(prompts, completions, references, *, max_chars: int, **_) -> list[float]:
    return [float(len(c) <= max_chars) for c in completions]


_CODE_FENCE = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL)


def _is_json(text: str) -> bool:
    candidates = [text.strip()]
    fenced = _CODE_FENCE.search(text)
    if fenced:
        candidates.append(fenced.group(1).strip())
    for candidate in candidates:
        try:
            json.loads(candidate)
            return True
        except ValueError:
            continue
    return False


@register("valid_json", binary=True, help="1 when the completion (or its first ``` block) "
          "parses as JSON.", params={})
def valid_json(prompts, completions, references, **_) -> list[float]:
    return [float(_is_json(c[:MAX_MATCH_INPUT_CHARS])) for c in completions]


_CRITERIA = ("regex", "contains", "not_contains", "max_length", "valid_json")


def _validate_criteria(criteria: list) -> list[dict[str, Any]]:
    out = []
    for i, criterion in enumerate(criteria):
        where = f"criteria[{i}]"
        if not isinstance(criterion, dict) or criterion.get("type") not in _CRITERIA:
            raise ConfigError(f"{where}.type", f"each criterion needs a 'type' among "
                              f"{', '.join(_CRITERIA)}")
        params = {k: v for k, v in criterion.items() if k not in ("type", "weight")}
        weight = criterion.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ConfigError(f"{where}.weight", "must be a number >= 0")
        weight = finite_float(weight, f"{where}.weight")
        try:
            params = validate_reward_params(criterion["type"], params)
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc.field}", exc.message) from None
        out.append({"type": criterion["type"], "weight": float(weight), **params})
    total = sum(c["weight"] for c in out)
    if not out or total <= 0:
        raise ConfigError("criteria", "give at least one criterion with a positive weight")
    if not math.isfinite(total):
        raise ConfigError("criteria", "the weights add up to more than a float holds; use smaller weights")
    return out


@register("checklist", binary=False, help="Weighted fraction of programmatic criteria met.",
          params={"criteria": Param((list,), help="list of {type, weight, ...params}; types: "
                                    + ", ".join(_CRITERIA))})
def checklist(prompts, completions, references, *, criteria: list[dict[str, Any]], **_
              ) -> list[float]:
    total = sum(c["weight"] for c in criteria)
    score = [0.0] * len(completions)
    for criterion in criteria:
        params = {k: v for k, v in criterion.items() if k not in ("type", "weight")}
        met = REWARDS[criterion["type"]].fn(prompts, completions, references, **params)
        score = [s + criterion["weight"] * m for s, m in zip(score, met)]
    return [s / total for s in score]


# --- length --------------------------------------------------------------------------------

@register("length", binary=False, help="DLER-style length reward: 1 within a token budget; "
          "past it 0 ('truncate') or falling linearly to 0 over a window ('linear').",
          params={"max_tokens": Param((int,), help="token budget", check=_positive),
                  "mode": Param((str,), "truncate", "'truncate' or 'linear'",
                                _choice("truncate", "linear")),
                  "window": Param((int,), None, "tokens over budget at which 'linear' reaches "
                                  "0 (default: max_tokens)", _positive)})
def length(prompts, completions, references, *, max_tokens: int, mode: str = "truncate",
           window: int | None = None, completion_lengths: Sequence[int] | None = None, **_
           ) -> list[float]:
    if completion_lengths is None:  # called outside the trainer: count words
        completion_lengths = [len(c.split()) for c in completions]
    window = window or max_tokens
    out = []
    for n in completion_lengths:
        over = max(0, n - max_tokens)
        out.append(float(over == 0) if mode == "truncate" else max(0.0, 1.0 - over / window))
    return out


# --- reward models -------------------------------------------------------------------------

def aggregate_ensemble(scores, aggregation: str = "mean", lam: float = 1.0):
    """(K, N) member scores -> (N,) rewards: 'mean', 'min' or 'mean_minus_std' (mean - lam * std,
    population std over members)."""
    if aggregation == "mean":
        return scores.mean(dim=0)
    if aggregation == "min":
        return scores.min(dim=0).values
    if aggregation == "mean_minus_std":
        return scores.mean(dim=0) - lam * scores.std(dim=0, unbiased=False)
    raise ConfigError("aggregation", f"{aggregation!r} is not one of mean, min, mean_minus_std")


def ensemble_disagreement(scores) -> float:
    """Mean over completions of the std across the K members of a (K, N) score tensor."""
    if scores.shape[0] < 2:
        return 0.0
    return float(scores.std(dim=0, unbiased=False).mean())


@functools.lru_cache(maxsize=4)
def _load_scorer(path: str, device: str | None):
    from .reward_model import load_reward_model  # noqa: PLC0415 (torch; owned elsewhere)

    return load_reward_model(path, device=device)


def release_cached_models() -> int:
    """Drop the reward models and judges kept between steps; returns how many were held.

    A worker calls this when a run ends, so the next run on that worker (often a policy run
    that needs the whole GPU) does not start with the last run's scorers still in memory.
    Frees the CUDA cache too when torch has already initialised CUDA in this process."""
    held = _load_scorer.cache_info().currsize + _load_judge_model.cache_info().currsize
    _load_scorer.cache_clear()
    _load_judge_model.cache_clear()
    if held:
        import gc
        import sys

        gc.collect()
        torch = sys.modules.get("torch")  # never import torch just to release nothing
        if torch is not None and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    return held


def reward_model_with_metrics(prompts, completions, references, *, path: str,
                              aggregation: str = "mean", device=None, **params
                              ) -> tuple[list[float], dict[str, float]]:
    scorer = _load_scorer(str(path), None if device is None else str(device))
    scores = scorer.score(list(prompts), list(completions)).detach().float().cpu()
    if scores.dim() == 1:
        scores = scores.unsqueeze(0)
    values = aggregate_ensemble(scores, aggregation, params.get("lambda", 1.0))
    return values.tolist(), {"disagreement": ensemble_disagreement(scores)}


@register("reward_model", binary=False, help="Score from a trained reward model (ensemble: "
          "mean, min or mean - lambda * std).", fn_with_metrics=reward_model_with_metrics,
          params={"path": Param((str,), help="folder of a saved reward model"),
                  "aggregation": Param((str,), "mean", "'mean', 'min' or 'mean_minus_std'",
                                       _choice("mean", "min", "mean_minus_std")),
                  "lambda": Param((float,), 1.0, "std weight for mean_minus_std",
                                  _non_negative)})
def reward_model(prompts, completions, references, **params) -> list[float]:
    return reward_model_with_metrics(prompts, completions, references, **params)[0]


# --- tournament (ArenaRL) ------------------------------------------------------------------

TOURNAMENT_ANCHORS = ("reference", "none")


def _check_judge(value: dict) -> str | None:
    from .config import PolicyConfig  # noqa: PLC0415 (cycle: config validates here)

    try:
        PolicyConfig.from_dict(value)
    except ConfigError as exc:  # the section's own checks name it 'policy'
        field = exc.field.removeprefix(f"{PolicyConfig.SECTION}.")
        raise ConfigError(f"judge.{field}", exc.message) from None
    return None


def _check_criteria_text(value: str) -> str | None:
    if not value.strip():
        return "must say what makes a response better"
    return None if len(value) <= 2000 else f"is {len(value)} characters; the limit is 2000"


@functools.lru_cache(maxsize=2)
def _load_judge_model(spec_json: str, device: str | None, cache_dir: str | None):
    """(model, tokenizer) of a judge, in eval mode; kept for the next step (and for a second
    tournament reward with the same judge but other criteria)."""
    import torch  # noqa: PLC0415 (torch only where a model runs)

    from .config import PolicyConfig  # noqa: PLC0415
    from .policy import load_policy  # noqa: PLC0415

    spec = PolicyConfig.from_dict(json.loads(spec_json))
    target = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer = load_policy(spec, cache_dir=cache_dir, device=target)
    return model.eval().requires_grad_(False), tokenizer


def _load_judge(judge: dict, device, cache_dir, criteria: str, max_tokens: int, batch_size: int):
    from .judges import PairwiseJudge  # noqa: PLC0415

    model, tokenizer = _load_judge_model(json.dumps(judge, sort_keys=True),
                                         None if device is None else str(device),
                                         None if cache_dir is None else str(cache_dir))
    limit = getattr(model.config, "max_position_embeddings", None) or max_tokens
    return PairwiseJudge(model, tokenizer, criteria=criteria, max_tokens=min(max_tokens, limit),
                         batch_size=batch_size)


def _has_reference(reference) -> bool:
    return reference is not None and bool(str(reference).strip())


def tournament_with_metrics(prompts, completions, references, *, judge: dict,
                            criteria: str | None = None, anchor: str = "reference",
                            max_tokens: int = 2048, batch_size: int = 16, group_size=None,
                            device=None, model_cache_dir=None, group_sizes=None, **_
                            ) -> tuple[list[float], dict[str, float]]:
    """Rewards from one seeded single-elimination bracket per group of ``group_size``
    contiguous completions (the whole batch when called without one); groups of different
    ``group_sizes`` (Knapsack RL, which the config refuses with a tournament) raise ValueError. With ``anchor``
    "reference", a group whose prompt has a reference answer is seeded by each completion's
    chance against it, and ``beats_reference`` is the mean of those chances; other groups are
    seeded in sampling order."""
    from .judges import DEFAULT_CRITERIA  # noqa: PLC0415
    from .tournament import tournament_rewards  # noqa: PLC0415

    n = len(completions)
    if group_sizes is not None:
        raise ValueError("a tournament's bracket is made for groups of one size; groups of "
                         "different sizes (rollout.budget_allocation 'knapsack') cannot be ranked")
    size = group_size or n
    if n % size:
        raise ValueError(f"{n} completions do not form groups of {size}")
    scorer = _load_judge(judge, device, model_cache_dir, criteria or DEFAULT_CRITERIA, max_tokens,
                         batch_size)
    groups = n // size
    calls: list[bool] = []
    seeds = [[0.0] * size for _ in range(groups)]
    extras: dict[str, float] = {}
    anchored = [g for g in range(groups)
                if anchor == "reference" and _has_reference(references[g * size])]
    if anchored:  # seed by each completion's chance against its prompt's reference answer
        rows = [g * size + j for g in anchored for j in range(size)]
        verdicts = scorer.compare([prompts[r] for r in rows], [completions[r] for r in rows],
                                  [str(references[r]) for r in rows])
        calls += verdicts.consistent
        for k, g in enumerate(anchored):
            seeds[g] = verdicts.first_better[k * size:(k + 1) * size]
        extras["beats_reference"] = sum(verdicts.first_better) / len(rows)

    def play(matches):
        rows = [(g * size + i, g * size + j) for g, i, j in matches]
        verdicts = scorer.compare([prompts[a] for a, _ in rows], [completions[a] for a, _ in rows],
                                  [completions[b] for _, b in rows])
        calls.extend(verdicts.consistent)
        return verdicts.first_better

    rewards = tournament_rewards(seeds, play)
    extras["judge_consistency"] = sum(calls) / len(calls) if calls else 1.0
    extras["judgements"] = float(len(calls))
    return [v for group in rewards for v in group], extras


@register("tournament", binary=False, help="ArenaRL: rank each group by a seeded "
          "single-elimination tournament a language model judges pair by pair (both orders); "
          "1 for the winner down to 0 for the first round's losers, so its mean is 0.5 whatever "
          "the policy does: follow rewards/<key>/beats_reference (the judge's win rate of the "
          "completions against the prompts' references) across steps instead. Watch "
          "rewards/<key>/judge_consistency: near 0, the judge picks a position, not a response "
          "(the built-in 135M model does; register a larger model as a policy to judge).",
          fn_with_metrics=tournament_with_metrics,
          params={"judge": Param((dict,), help="the judge model, as a policy section: "
                                 '{"source": "builtin", "name": "smollm2-135m-instruct"}',
                                 check=_check_judge),
                  "criteria": Param((str,), None, "what makes a response better (default: "
                                    "correct, helpful, honest and clear)", _check_criteria_text),
                  "anchor": Param((str,), "reference", "'reference': seed each group's bracket by "
                                  "its completions' chances against the prompt's reference answer "
                                  "(groups whose prompt has none are seeded in sampling order); "
                                  "'none': seed in sampling order",
                                  _choice(*TOURNAMENT_ANCHORS)),
                  "max_tokens": Param((int,), 2048, "longest judge input in tokens; longer "
                                      "ones are cut from the left", _positive),
                  "batch_size": Param((int,), 16, "judge inputs per forward pass", _positive)})
def tournament(prompts, completions, references, **params) -> list[float]:
    return tournament_with_metrics(prompts, completions, references, **params)[0]


# --- rubric judged by a language model -----------------------------------------------------

MAX_JUDGED_CRITERIA = 20
JUDGE_PROBES = (":", "Thought process:")  # master keys ("One Token to Fool LLM-as-a-Judge")


def _check_judged_criteria(value: list) -> str | None:
    if not value:
        return "give at least one criterion, e.g. [{\"name\": \"Correct\", \"description\": \"...\"}]"
    if len(value) > MAX_JUDGED_CRITERIA:
        return f"{len(value)} criteria; at most {MAX_JUDGED_CRITERIA}"
    names, total = set(), 0.0
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            return f"criterion {i} needs a 'name' (text)"
        unknown = sorted(set(item) - {"name", "description", "weight"})
        if unknown:
            return f"criterion {i}: unknown key {unknown[0]!r}; use name, description, weight"
        if not isinstance(item.get("description", ""), str):
            return f"criterion {i}: 'description' must be text"
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            return f"criterion {i}: 'weight' must be a number > 0"
        try:
            total += float(weight)
        except OverflowError:
            total = math.inf
        if not math.isfinite(total):
            return f"criterion {i}: 'weight' must be a finite number, and the weights' sum too"
        if len(item["name"]) + len(item.get("description", "")) > 2000:
            return f"criterion {i} is longer than 2000 characters"
        if item["name"] in names:
            return f"two criteria are called {item['name']!r}"
        names.add(item["name"])
    return None


def _load_criterion_judge(judge: dict, device, cache_dir, max_tokens: int, batch_size: int):
    from .judges import CriterionJudge  # noqa: PLC0415

    model, tokenizer = _load_judge_model(json.dumps(judge, sort_keys=True),
                                         None if device is None else str(device),
                                         None if cache_dir is None else str(cache_dir))
    limit = getattr(model.config, "max_position_embeddings", None) or max_tokens
    return CriterionJudge(model, tokenizer, max_tokens=min(max_tokens, limit), batch_size=batch_size)


def rubric_judge_with_metrics(prompts, completions, references, *, judge: dict, criteria: list,
                              max_tokens: int = 2048, batch_size: int = 16, probes: bool = True,
                              group_size=None, device=None, model_cache_dir=None,
                              group_sizes=None, **_) -> tuple[list[float], dict[str, float]]:
    """Each completion's weighted mean P(meets the criterion) over the criteria; metrics: each
    criterion's mean, and with ``probes`` the score the same judge gives content-free master-key
    responses to the batch's prompts (high means the judge can be gamed)."""
    scorer = _load_criterion_judge(judge, device, model_cache_dir, max_tokens, batch_size)
    rules = [(c["name"], c.get("description", "")) for c in criteria]
    weights = [float(c.get("weight", 1.0)) for c in criteria]
    total = sum(weights)
    per = scorer.scores(prompts, completions, rules)
    values = [sum(w * p for w, p in zip(weights, row)) / total for row in per]
    n = len(completions)
    extras = {f"criteria/{name[:60]}": sum(row[i] for row in per) / n if n else 0.0
              for i, (name, _) in enumerate(rules)}
    if probes and n:
        if group_sizes is not None:  # groups of different sizes: each one's first row
            starts = [sum(group_sizes[:i]) for i in range(len(group_sizes))]
        else:
            starts = list(range(0, n, group_size or n))
        asked = [prompts[g] for g in starts]
        probed = scorer.scores([p for p in asked for _ in JUDGE_PROBES], [r for _ in asked for r in JUDGE_PROBES],
                               rules)
        extras["master_key"] = sum(sum(w * p for w, p in zip(weights, row)) / total for row in probed) / len(probed)
    return values, extras


@register("rubric_judge", binary=False, help="A rubric's criteria judged one by one by a language "
          "model: the weighted mean of P(the completion meets the criterion), read as P(Yes) against "
          "P(No). Metrics: each criterion's mean (rewards/<key>/criteria/<name>) and, with probes, "
          "the score it gives content-free answers such as ':' (rewards/<key>/master_key): a judge "
          "that rates them well can be gamed.",
          fn_with_metrics=rubric_judge_with_metrics,
          params={"judge": Param((dict,), help="the judge model, as a policy section: "
                                 '{"source": "builtin", "name": "smollm2-135m-instruct"}',
                                 check=_check_judge),
                  "criteria": Param((list,), help="[{\"name\", \"description\"?, \"weight\"?}, ...] "
                                    "(a Steer rubric's criteria, when named by \"rubric\": <id>)",
                                    check=_check_judged_criteria),
                  "rubric_version": Param((int,), None, "the Steer rubric version the criteria came "
                                          "from (recorded, not read)"),
                  "probes": Param((bool,), True, "also score master-key answers (':' and "
                                  "'Thought process:') to each prompt and report it"),
                  "max_tokens": Param((int,), 2048, "longest judge input in tokens; a long request "
                                      "or completion keeps its start and its end", _positive),
                  "batch_size": Param((int,), 16, "judge inputs per forward pass", _positive)})
def rubric_judge(prompts, completions, references, **params) -> list[float]:
    return rubric_judge_with_metrics(prompts, completions, references, **params)[0]


# --- scoring a batch -----------------------------------------------------------------------

def score_completions(reward_configs, prompts: Sequence, completions: Sequence[str],
                      references: Sequence[str | None], *, completion_lengths: Sequence[int],
                      device=None, group_size: int | None = None, model_cache_dir=None,
                      group_sizes: Sequence[int] | None = None
                      ) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Run every configured component on N completions (``group_size`` contiguous ones per
    prompt, for components that compare a group's completions; built-in models that a component
    loads are cached in ``model_cache_dir``). ``group_sizes``: contiguous groups of these sizes
    instead (Knapsack RL); components then get it as the context keyword ``group_sizes`` (and
    ``group_size`` None), which only given, so a uniform run's calls are as before.

    Returns ({reward key: N values}, {"rewards/<key>/<extra>": value}) where the extras come
    from components that report them (reward-model disagreement).
    """
    values: dict[str, list[float]] = {}
    extras: dict[str, float] = {}
    context = {"completion_lengths": list(completion_lengths), "device": device,
               "group_size": group_size, "model_cache_dir": model_cache_dir}
    if group_sizes is not None:
        context.update(group_size=None, group_sizes=list(group_sizes))
    for cfg in reward_configs:
        component = REWARDS[cfg.name]
        if component.fn_with_metrics is not None:
            out, more = component.fn_with_metrics(prompts, completions, references,
                                                  **context, **cfg.params)
            extras.update({f"rewards/{cfg.key}/{k}": v for k, v in more.items()})
        else:
            out = component.fn(prompts, completions, references, **context, **cfg.params)
        if len(out) != len(completions):
            raise RuntimeError(f"reward {cfg.key!r} returned {len(out)} values for "
                               f"{len(completions)} completions")
        values[cfg.key] = [float(v) for v in out]
    return values, extras


# --- reference -----------------------------------------------------------------------------

def reward_catalog() -> list[dict[str, Any]]:
    """Every registered component with its help and parameters, for the launch form and docs:
    [{name, help, binary, params: [{name, types, required, default, help}]}], by name; a
    default is written as JSON (as it would be typed in a config), None when required."""
    import json  # noqa: PLC0415

    return [{"name": c.name, "help": c.help, "binary": c.binary,
             "params": [{"name": p, "types": " or ".join(t.__name__ for t in spec.types),
                         "required": spec.default is _REQUIRED,
                         "default": None if spec.default is _REQUIRED else json.dumps(spec.default),
                         "help": spec.help}
                        for p, spec in c.params.items()]}
            for c in sorted(REWARDS.values(), key=lambda c: c.name)]


def reward_common_keys() -> list[dict[str, str]]:
    """The keys every component takes beside its own parameters (RewardConfig's fields)."""
    import dataclasses  # noqa: PLC0415

    from .config import RewardConfig  # noqa: PLC0415 (cycle: config validates through here)

    return [{"name": f.name, "help": f.metadata.get("help", "")}
            for f in dataclasses.fields(RewardConfig) if f.name != "params"]
