"""Review: a completion whose answer is a number too small for a float (0.000…01 with 400 zeros)
must score 0 or 1 like any other answer, not raise from the size check (math.log10(0.0))."""

import threading

import pytest

from workers.engine.rewards import math_verify

pytest.importorskip("math_verify")

TINY = "0." + "0" * 400 + "1"
ANSWERS = [rf"The final answer is $\boxed{{{TINY}}}$", rf"\boxed{{-{TINY}}}", rf"\boxed{{\sqrt{{{TINY}}}}}",
           rf"\boxed{{x^{{{TINY}}}}}"]


@pytest.mark.parametrize("completion", ANSWERS)
def test_an_answer_below_a_floats_range_scores_without_raising(completion):
    assert math_verify(["p"], [completion], ["1"], timeout_s=5) == [0.0]


def test_a_tiny_reference_matches_itself():
    assert math_verify(["p"], [rf"\boxed{{{TINY}}}"], [TINY], timeout_s=5) == [1.0]


def test_off_the_main_thread_too():
    out = {}
    worker = threading.Thread(target=lambda: out.update(v=math_verify(["p"], [ANSWERS[0]], ["1"], timeout_s=5)))
    worker.start()
    worker.join(60)
    assert out.get("v") == [0.0]

