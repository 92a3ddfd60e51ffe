"""A regex reward's pattern that backtracks without end fails the run saying so within seconds,
instead of holding its step (which a cancel cannot interrupt) for hours; flags that are not
strings are a ConfigError, not a TypeError at launch."""

import subprocess
import sys
from pathlib import Path

import pytest

from workers.engine.errors import ConfigError, EngineError
from workers.engine.rewards import PatternTimeout, validate_reward_params

ROOT = Path(__file__).resolve().parents[2]


def test_a_pattern_that_backtracks_without_end_stops_with_an_engine_error():
    """Run in a child process: with `re` the match held the GIL for hours, so only a process
    boundary lets the old code fail this test instead of hanging it."""
    code = ("from workers.engine.rewards import REWARDS\n"
            "try:\n"
            "    REWARDS['regex'].fn(['p'], ['a' * 5000 + '!'], [None], pattern='(a|aa)+$')\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, exc)\n")
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("the pattern was still matching after 60 s")
    assert done.stdout.startswith("PatternTimeout the regular expression '(a|aa)+$' ran for more than 2 s"), done.stderr
    assert issubclass(PatternTimeout, EngineError)  # the run fails with this one line, not a traceback


def test_a_pattern_that_only_looks_dangerous_still_matches_at_once():
    fn = validate_reward_params  # the same dialect at launch as in the worker
    assert fn("regex", {"pattern": "(a|a)*b"}) == {"pattern": "(a|a)*b"}
    from workers.engine.rewards import REWARDS

    assert REWARDS["regex"].fn(["p"], ["a" * 60 + "b", "a" * 60], [None, None], pattern="(a|a)*b") == [1.0, 0.0]


@pytest.mark.parametrize("flags", [[[1]], [{}], [None]])
def test_regex_flags_that_are_not_names_are_refused_naming_them(flags):
    with pytest.raises(ConfigError) as caught:
        validate_reward_params("regex", {"pattern": "a", "flags": flags})
    assert caught.value.field == "flags" and "unknown flags" in caught.value.message
