"""Errors a user can cause by what they hand the engine (configs, data, paths)."""

import json
import math


class EngineError(Exception):
    """Base class of the engine's user-facing errors."""


class ConfigError(EngineError, ValueError):
    """A config value is missing, unknown or out of range.

    ``field`` is the dotted path of the offending key (``"algorithm.num_generations"``),
    so the web form and the CLI can point at it.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def finite_float(value: float, field: str) -> float:
    """``value`` (a JSON number, already known to be one) as a finite float, or ConfigError on
    ``field``: JSON allows integers of any size (10**400), which ``float()`` cannot convert
    (OverflowError, not a ValueError), and a dict built in Python may hold NaN or infinity."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        shown = "an integer beyond 1.8e308" if isinstance(value, int) else repr(value)
        raise ConfigError(field, f"must be a finite number of at most about 1.8e308, got {shown}")
    return number


def unreadable_json(where: str, exc: BaseException) -> str:
    """One line for what a reader of a JSON or JSONL file met besides a missing file: text that
    is not UTF-8 (a UTF-16 export), nesting past Python's parser (RecursionError), a number of
    more digits than Python reads, or a syntax error. ``where`` names the file (and line)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"{where} is not UTF-8 text (byte {exc.start}: 0x{exc.object[exc.start]:02X}); save it as UTF-8"
    if isinstance(exc, RecursionError):
        return f"{where}: JSON nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return f"{where}: not valid JSON ({exc.msg})"
    return f"{where}: {exc}"


class DataError(EngineError, ValueError):
    """The prompts or preference data handed to the engine cannot be used."""


class TrainingDiverged(EngineError, ArithmeticError):
    """The loss stopped being a number (NaN or infinite): the weights are ruined, so nothing
    further is trained or saved; the settings that scale the loss or the step are at fault."""


class ModelLoadError(EngineError, OSError):
    """A policy or reward model could not be found or loaded."""
