"""The math_verify reward: symbolic equivalence of LaTeX answers (workers/engine/math_equivalence.py)."""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from workers.engine.config import RewardConfig, TrainConfig, default_config_dict
from workers.engine.errors import ConfigError
from workers.engine.math_equivalence import (
    is_words,
    math_verify_missing,
    parse_reference,
    reference_latex,
    too_large,
)
from workers.engine.rewards import (
    REWARDS,
    reward_catalog,
    score_completions,
    validate_reward_params,
)

ROOT = Path(__file__).resolve().parents[2]
TOWER = r"The answer is \boxed{10^{10^{10^{10}}}}"


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": ""}, check=False)


def score(completions, references, **params):
    return REWARDS["math_verify"].fn([""] * len(completions), completions, references, **params)


@pytest.mark.parametrize("reference, completion", [
    (r"\frac{\sqrt{2}}{2}", r"So the answer is \boxed{\sqrt{2}/2}."),
    (r"\dfrac{\sqrt{2}}{2}", r"\boxed{\frac{1}{\sqrt{2}}}"),
    ("x^2+2x+1", r"Expanding, \boxed{(x+1)^2}"),
    (r"\left(3, \frac{\pi}{2}\right)", r"In polar coordinates: $\boxed{(3,\pi/2)}$"),
    (r"\{1,2\}", r"\boxed{\{2,1\}}"),
    ("[1, 3)", r"\boxed{[1,3)}"),
    (r"(-\infty, 2]", r"\boxed{(-\infty,2]}"),
    (r"30^\circ", r"The angle is \boxed{30}."),
    (r"5\text{ cm}", r"\boxed{5}"),
    (r"\frac{1}{2}", r"\boxed{0.5}"),
    (r"$\frac{1}{2}$", r"\boxed{\frac{2}{4}}"),
    (r"\boxed{\frac12}", r"\boxed{\frac{1}{2}}"),  # a reference's malformed LaTeX is mended
    (r"\boxed{1000}", r"\boxed{1,000}"),
])
def test_equivalent_answers_score_1(reference, completion):
    assert score([completion], [reference]) == [1.0]


@pytest.mark.parametrize("reference, completion", [
    (r"\frac{1}{3}", r"\boxed{0.33}"),
    ("x+1", r"\boxed{x-1}"),
    ("[1, 3)", r"\boxed{(1,3)}"),
    (r"\{1,2\}", r"\boxed{\{1,3\}}"),
    ("72", "I could not solve it."),
    (r"\frac{1}{2}", r"\boxed{\frac12}"),  # an answer's is not, as in TRL's accuracy_reward
])
def test_different_answers_score_0(reference, completion):
    assert score([completion], [reference]) == [0.0]


def test_exact_answer_misses_what_math_verify_finds():
    completions, references = [r"\boxed{(x+1)^2}"], ["x^2+2x+1"]
    assert REWARDS["exact_answer"].fn([""], completions, references) == [0.0]
    assert score(completions, references) == [1.0]


def test_gsm8k_reference_is_reduced_to_its_answer():
    reference = "Natalia sold 48/2 = 24 clips in May.\n48 + 24 = 72 clips in all.\n#### 72"
    assert reference_latex(reference) == "$72$"
    assert score(["She sold 48 + 24 = 72 clips.\n#### 72", "The answer is 72.", "#### 71"],
                 [reference] * 3) == [1.0, 1.0, 0.0]


def test_the_boxed_answer_wins_over_later_chatter():
    completion = (r"Let me check 2 + 2 = 4 first. So the result is \boxed{\frac{3}{4}}. "
                  "I double-checked with 5 and 7 and 9.")
    assert score([completion], ["0.75"]) == [1.0]
    assert score([completion], ["9"]) == [0.0]


def test_a_missing_reference_scores_as_exact_answer_does():
    completions = [r"\boxed{1}", "The answer is 2"]
    assert score(completions, [None, None]) == [0.0, 0.0]
    assert score(completions, None) == REWARDS["exact_answer"].fn(["", ""], completions, None) == [0.0, 0.0]


@pytest.mark.parametrize("reference, completion, expected", [
    ("Paris", "The capital is Paris.\nThe answer is Paris", 1.0),
    (r"\text{yes}", "Answer: yes", 1.0),
    ("Paris", "The answer is Lyon", 0.0),
    (r"\frac{1}{", r"The answer is \frac{1}{", 1.0),  # malformed LaTeX, compared as text
])
def test_a_reference_without_mathematics_is_compared_as_exact_answer_compares(reference, completion,
                                                                              expected):
    assert parse_reference(reference, 5) == []
    assert score([completion], [reference]) == [expected]
    assert REWARDS["exact_answer"].fn([""], [completion], [reference]) == [expected]


@pytest.mark.parametrize("reference, words", [
    ("Paris", True), ("New York", True), (r"\text{yes}", True), ("#### no", True),
    ("x^2", False), ("72", False), (r"\frac{1}{2}", False), (r"\pi", False),
])
def test_words_are_told_from_mathematics(reference, words):
    assert is_words(reference) is words


@pytest.mark.parametrize("reference, latex", [
    ("72", "$72$"), (r" \frac{1}{2} ", r"$\frac{1}{2}$"), (r"$\frac{1}{2}$", r"$\frac{1}{2}$"),
    (r"\boxed{5}", r"\boxed{5}"), ("steps...\n#### 1,000", "$1,000$"),
])
def test_reference_latex(reference, latex):
    assert reference_latex(reference) == latex


def test_numbers_too_large_to_compute_are_not_compared():
    from math_verify import parse

    assert too_large(parse(r"$10^{10^{10^{10}}}$"))
    assert too_large(parse(r"$9^{99999999}$"))
    assert too_large(parse(r"$(x+1)^{10^{9}}$"))
    assert not too_large(parse(r"$2^{100} + \frac{\sqrt{2}}{2}$"))
    assert not too_large(parse(r"$\{1, x^{10}\}$"))
    start = time.monotonic()
    assert score([TOWER], ["5"], timeout_s=5) == [0.0]
    assert time.monotonic() - start < 2


def test_in_another_thread_it_scores_without_signals_and_gives_up_after_the_timeout():
    completions = [r"\boxed{\sqrt{2}/2}", r"\boxed{(x+1)^{1000}}", TOWER, r"\boxed{0.7}"]
    references = [r"\frac{\sqrt{2}}{2}", "5", "5", r"\frac{\sqrt{2}}{2}"]
    seen = {}

    def run():
        try:
            start = time.monotonic()
            seen["values"] = score(completions, references, timeout_s=1)
            seen["seconds"] = time.monotonic() - start
        except BaseException as exc:  # noqa: BLE001 (reported by the test, not lost in a thread)
            seen["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    assert "error" not in seen, seen.get("error")
    assert seen["values"] == [1.0, 0.0, 0.0, 0.0]
    assert seen["seconds"] < 10  # (x+1)^1000 - 5 simplifies for minutes; given up after 1 s
    deadline = time.monotonic() + 10
    while any(t.name == "steer-math-verify" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "steer-math-verify" for t in threading.enumerate())  # interrupted


def test_in_the_main_thread_a_pending_alarm_survives():
    assert threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, 100)
    try:
        assert score([r"\boxed{\sqrt{2}/2}"], [r"\frac{\sqrt{2}}{2}"]) == [1.0]
        delay, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 90 < delay <= 100
    finally:
        signal.setitimer(signal.ITIMER_REAL, old_delay, old_interval)
        signal.signal(signal.SIGALRM, previous)


def test_it_is_a_binary_accuracy_reward_listed_with_its_timeout():
    assert REWARDS["math_verify"].binary
    config = TrainConfig.from_dict({**default_config_dict(),
                                    "rewards": [{"name": "math_verify"}, {"name": "length", "max_tokens": 10}]})
    assert config.accuracy_reward == "math_verify"
    assert config.held_out_reward.name == "math_verify"
    entry = next(c for c in reward_catalog() if c["name"] == "math_verify")
    assert entry["binary"] and "math-verify" in entry["help"]
    assert [(p["name"], p["default"]) for p in entry["params"]] == [("timeout_s", "5")]


def test_score_completions_runs_it_with_the_trainer_context():
    values, _ = score_completions([RewardConfig(name="math_verify", params={"timeout_s": 3})], ["p", "p"],
                                  [r"\boxed{\frac{1}{2}}", r"\boxed{2}"], ["0.5", "0.5"],
                                  completion_lengths=[5, 5], group_size=2)
    assert values == {"math_verify": [1.0, 0.0]}


@pytest.mark.parametrize("params, field, message", [
    ({"timeout_s": 0}, "timeout_s", "between 1 and 600"),
    ({"timeout_s": -3}, "timeout_s", "between 1 and 600"),
    ({"timeout_s": 601}, "timeout_s", "between 1 and 600"),
    ({"timeout_s": 2.5}, "timeout_s", "expected int"),
    ({"timeout_s": True}, "timeout_s", "expected int"),
    ({"timeout_s": "5"}, "timeout_s", "expected int"),
    ({"tolerance": 0.1}, "tolerance", "unknown parameter"),
])
def test_bad_params_are_refused_naming_them(params, field, message):
    with pytest.raises(ConfigError) as caught:
        validate_reward_params("math_verify", params)
    assert caught.value.field == field and message in caught.value.message


def test_params_default_and_pass_through():
    assert validate_reward_params("math_verify", {}) == {}
    assert validate_reward_params("math_verify", {"timeout_s": 1}) == {"timeout_s": 1}


def test_without_the_package_configuring_it_fails_naming_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "math_verify", None)  # what `import math_verify` meets when absent
    assert "pip install math-verify==0.9.0" in math_verify_missing()
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict({**default_config_dict(), "rewards": [{"name": "math_verify"}]})
    assert caught.value.field == "rewards[0].name"
    assert "math-verify" in caught.value.message
    with pytest.raises(ConfigError, match="math-verify"):  # a config validated elsewhere: no ImportError
        score([r"\boxed{1}"], ["1"])
    TrainConfig.from_dict(default_config_dict())  # other rewards are untouched


def test_the_engine_runs_where_math_verify_is_not_installed():
    code = ("import sys\n"
            "sys.modules.update(math_verify=None, latex2sympy2_extended=None)\n"
            "from workers.engine import TrainConfig, default_config_dict\n"
            "from workers.engine.rewards import REWARDS\n"
            "import workers.engine.trainer\n"
            "TrainConfig.from_dict(default_config_dict())\n"
            "assert REWARDS['exact_answer'].fn([''], ['#### 7'], ['7']) == [1.0]\n"
            "try:\n"
            "    TrainConfig.from_dict({**default_config_dict(), 'rewards': [{'name': 'math_verify'}]})\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, exc)\n")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ConfigError rewards[0].name: reward 'math_verify' needs the math-verify")


def test_config_validation_imports_neither_math_verify_nor_sympy():
    code = ("import sys\n"
            "from workers.engine import TrainConfig, default_config_dict\n"
            "TrainConfig.from_dict({**default_config_dict(), 'rewards': [{'name': 'math_verify'}]})\n"
            "assert 'math_verify' not in sys.modules and 'sympy' not in sys.modules, 'imported'\n")
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_prompts_without_a_reference_are_refused_naming_the_reward(tiny_cfg, tmp_path):
    from workers.engine import PromptRecord, train
    from workers.engine.data import validate_prompts
    from workers.engine.errors import DataError
    from workers.engine.evaluation_run import evaluate_policy

    prompts = [PromptRecord("1+1?", "2"), PromptRecord("2+2?")]
    with pytest.raises(DataError, match=r"prompt #1 has no reference answer, which math_verify needs"):
        validate_prompts(prompts, need_references="math_verify")
    assert len(validate_prompts(prompts)) == 2
    config = TrainConfig.from_dict(tiny_cfg(rewards=[{"name": "math_verify"}]))
    with pytest.raises(DataError, match="which math_verify needs"):
        evaluate_policy(config, prompts)
    with pytest.raises(DataError, match="which math_verify needs"):
        train(config, prompts, output_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_weight_0_math_verify_measures_accuracy_beside_other_0_1_rewards(tiny_cfg):
    config = TrainConfig.from_dict(tiny_cfg(rewards=[{"name": "regex", "pattern": "^A"},
                                                     {"name": "math_verify", "weight": 0}]))
    assert config.accuracy_reward == "math_verify"
    config = TrainConfig.from_dict(tiny_cfg(rewards=[{"name": "math_verify"}, {"name": "exact_answer"}]))
    assert config.accuracy_reward == "math_verify"  # the first of the two that read the reference


def test_math_verify_logs_a_parse_timeout_without_the_answers_text(caplog):
    import logging

    from workers.engine.math_equivalence import _math_verify

    _math_verify()
    secret = "the model's whole answer " * 10
    with caplog.at_level(logging.WARNING):
        logging.getLogger("math_verify.parser").warning(f"Timeout during parsing: {secret}")  # as math-verify does
        logging.getLogger("math_verify.grader").warning("Timeout is disabled as timeout_seconds is None or <= 0, ...")
    assert [r.getMessage() for r in caplog.records] == [
        "Timeout during parsing (math_verify reward: the answer's text is not logged)"]
    _math_verify()  # the filter is added once
    assert len(logging.getLogger("math_verify.parser").filters) == 1
