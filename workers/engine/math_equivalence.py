"""Whether a completion's final answer is mathematically the reference, by Hugging Face's
math-verify (the checker behind TRL's ``accuracy_reward``): ``\\frac{\\sqrt{2}}{2}`` is
``\\sqrt{2}/2``, ``(x+1)^2`` is ``x^2+2x+1``, ``\\{1,2\\}`` is ``\\{2,1\\}``, ``30^\\circ`` is 30.

math-verify (and sympy under it) is imported when first used: the engine runs without it
where no run asks for it (``math_verify_missing`` says so at config time).

Time. math-verify stops a parse or a comparison with ``signal.alarm``, which only the main
thread may set. In the main thread (the CLI, a Celery prefork or solo worker) its own timeouts
bound each of the three steps of an item (parsing the reference, parsing the answer,
comparing). In any other thread its timeouts are off and the item runs in a helper thread that
is given up after the timeout (the item scores 0) and interrupted at its next Python
instruction. Either way inputs are cut to ``MAX_INPUT_CHARS``, as the other rewards cut theirs,
and an answer holding a number of more than ``MAX_DIGITS`` digits (``10^{10^{10^{10}}}``)
scores 0 unevaluated: Python computes such a number in one C call, which no thread can
interrupt, and which would hold the interpreter's lock (so the whole worker) until it ends.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import math
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

MATH_VERIFY_REQUIREMENT = "math-verify==0.9.0"
MAX_INPUT_CHARS = 20_000  # as rewards.MAX_MATCH_INPUT_CHARS: the answer is near the end
# Larger numbers (10^{10^{10^{10}}}) are not computed: Python builds them inside one C call that
# neither a helper thread nor the switch to another thread can interrupt.
MAX_DIGITS = 10_000
_WORDS = re.compile(r"[A-Za-z]+(?:[ '-][A-Za-z]+)*\.?")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textrm|mathrm)\{([^{}]*)\}")
_T = TypeVar("_T")


def math_verify_missing() -> str | None:
    """None when math-verify can be imported here, else what to install (without importing it:
    sympy takes a second to load and config validation must stay light)."""
    for module in ("math_verify", "latex2sympy2_extended", "sympy"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent missing, or a module stubbed out as None
            found = False
        if not found:
            return (f"needs the math-verify package ({module!r} is not installed where the engine "
                    f"runs): pip install {MATH_VERIFY_REQUIREMENT}")
    return None


def reference_latex(reference: str) -> str:
    """The reference as math-verify reads it: a GSM8K-style "... #### 72" reduced to "72" (as
    ``answers_match`` reduces it), and a plain "\\frac{1}{2}" put between $...$ unless it is
    already in $...$ or a \\boxed{}."""
    if "####" in reference:
        reference = reference.rsplit("####", 1)[1]
    reference = reference.strip()[:MAX_INPUT_CHARS]
    if "$" in reference or "\\boxed" in reference:
        return reference
    return f"${reference}$"


def is_words(reference: str) -> bool:
    """Whether the reference is words ("Paris", "\\text{yes}"), which math-verify would read
    as a product of letters p*a*r*i*s and find in no plain-text answer."""
    if "####" in reference:
        reference = reference.rsplit("####", 1)[1]
    return _WORDS.fullmatch(_TEXT_COMMAND.sub(r"\1", reference).replace("$", "").strip()) is not None


def parse_reference(reference: str, timeout_s: int) -> list:
    """math-verify's reading of a reference ([sympy object, its text]); [] when it finds no
    mathematics in it: words, malformed LaTeX, a number past ``MAX_DIGITS`` digits, or a parse
    past the timeout."""
    if is_words(reference):
        return []
    latex = reference_latex(reference)
    parsed = _bounded(lambda t: _math_verify().parse(latex, parsing_timeout=t), timeout_s, [])
    if too_large(parsed):
        return []
    return parsed if any(not isinstance(p, str) for p in parsed) else []


def answer_matches(gold: list, completion: str, timeout_s: int) -> bool:
    """Whether the completion's final answer is equivalent to ``gold`` (``parse_reference``'s
    result). The answer is read as TRL's accuracy_reward reads it, LaTeX with a \\boxed{} first
    (then "the final answer is $...$"), units and degrees dropped; then, for the plain answers
    of GSM8K-style completions ("The answer is 72", "#### 72"), as a plain expression."""
    text = completion[-MAX_INPUT_CHARS:]

    def check(t: int | None) -> bool:
        mv = _math_verify()
        answer = mv.parse(text, extraction_config=_answer_extraction(), extraction_mode="first_match",
                          parsing_timeout=t)
        return bool(answer) and not too_large(answer) and mv.verify(gold, answer, timeout_seconds=t)

    return _bounded(check, timeout_s, False)


def _math_verify():
    from .errors import ConfigError

    try:
        import math_verify  # optional: sympy loads in a second, and GPU boxes may lack it
    except ImportError as exc:
        raise ConfigError("name", f"reward 'math_verify' needs the math-verify package, which cannot be "
                          f"imported here ({exc}): pip install {MATH_VERIFY_REQUIREMENT}") from None
    for name in ("math_verify.parser", "math_verify.grader"):
        log = logging.getLogger(name)
        if not any(isinstance(f, QuietMathVerifyLog) for f in log.filters):
            log.addFilter(QuietMathVerifyLog())
    return math_verify


class QuietMathVerifyLog(logging.Filter):
    """math-verify's warnings as a worker's log should carry them: a parse past its time is
    logged without the answer's text (model text, up to ``MAX_INPUT_CHARS`` of it, on every
    timed-out item), and its "Timeout is disabled" warning is dropped, since outside the main
    thread ``_bounded`` is the timeout it asks for."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Timeout is disabled"):
            return False
        if message.startswith("Timeout during parsing"):
            record.msg, record.args = "Timeout during parsing (math_verify reward: the answer's text is not logged)", ()
        return True


def _answer_extraction() -> list:
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(normalization_config=NormalizationConfig(units=True),
                                  boxed_match_priority=0, try_extract_without_anchor=False),
            ExprExtractionConfig()]


def too_large(parsed: list) -> bool:
    """Whether a parse (sympy objects and texts) holds a number of more than ``MAX_DIGITS``
    digits, or a power of a variable past that degree, that comparing would compute."""
    try:
        return any(_log10_size(p) > MAX_DIGITS for p in parsed if not isinstance(p, str))
    except RecursionError:  # nested past Python's stack: no comparison would finish either
        return True


def _log10_size(expr) -> float:
    """An upper estimate of the decimal digits of the largest number (or the degree of the
    polynomial) that evaluating ``expr`` exactly builds; inf past a float's range."""
    from sympy import Add, Float, Mul, Number, Pow, Rational, factorial

    if isinstance(expr, Float):
        value = abs(float(expr))  # 0.0 for a number below a float's range (0.000…01, 400 zeros)
        return math.log10(value) if value else 0.0
    if isinstance(expr, Rational):
        return max(expr.p.bit_length(), expr.q.bit_length(), 1) * math.log10(2)
    if isinstance(expr, Number):  # oo, nan
        return 0.0
    children = list(getattr(expr, "args", ()) or ())
    if not children and hasattr(expr, "flat"):  # a mutable matrix
        children = list(expr.flat())
    sizes = [_log10_size(c) for c in children if not isinstance(c, str)]
    if isinstance(expr, Pow):
        base, exponent = sizes
        return _magnitude(exponent) * max(base, 1.0)
    if isinstance(expr, factorial):
        n = _magnitude(sizes[0])
        return n * math.log10(n) if math.isfinite(n) else math.inf
    if isinstance(expr, Mul):
        return sum(sizes)
    if isinstance(expr, Add):
        return max(sizes) + 1
    return max(sizes, default=0.0)


def _magnitude(log10_size: float) -> float:
    return 10.0 ** log10_size if log10_size < 300 else math.inf


# --- bounding the time of one item ---------------------------------------------------------

class _GivenUp(BaseException):
    """Raised inside a helper thread past its time; a BaseException, so that math-verify's
    ``except Exception`` does not swallow it and carry on with the next step."""


def _bounded(task: Callable[[int | None], _T], timeout_s: int, on_timeout: _T) -> _T:
    """``task(timeout)``: in the main thread with math-verify's alarms (``timeout_s``), any
    pending alarm of the process's own kept; elsewhere ``task(None)`` in a helper thread,
    ``on_timeout`` when it runs past ``timeout_s``."""
    if threading.current_thread() is threading.main_thread():
        with _outer_alarm_kept():
            return task(timeout_s)
    return _in_helper_thread(lambda: task(None), timeout_s, on_timeout)


@contextmanager
def _outer_alarm_kept() -> Iterator[None]:
    """math-verify cancels any alarm when its own ends (``signal.alarm(0)``): re-arm the one
    that was pending (pytest-timeout's, a caller's), less the time spent, so it still fires."""
    delay, interval = signal.getitimer(signal.ITIMER_REAL)
    start = time.monotonic()
    try:
        yield
    finally:
        if delay > 0:
            signal.setitimer(signal.ITIMER_REAL, max(delay - (time.monotonic() - start), 1e-3), interval)


def _in_helper_thread(fn: Callable[[], _T], timeout_s: float, on_timeout: _T) -> _T:
    """``fn()`` run in a daemon thread; ``on_timeout`` if it has not returned after
    ``timeout_s``, the thread then interrupted at its next Python instruction (a computation
    inside one C call runs on until that call returns, holding nothing of the caller's)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except _GivenUp:
            pass
        except BaseException as exc:  # noqa: BLE001 (handed to the caller's thread)
            box["error"] = exc

    helper = threading.Thread(target=run, name="steer-math-verify", daemon=True)
    helper.start()
    helper.join(timeout_s)
    if helper.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(helper.ident), ctypes.py_object(_GivenUp))
        return on_timeout
    if "error" in box:
        raise box["error"]
    return box["value"]
