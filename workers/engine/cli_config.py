"""The engine's commands: how they end (``run_cli``), where they cache converted built-in models
(``add_model_cache_dir_option``, ``model_cache_dir``), a trainer's config file, its settings
and the data file it names (``read_cli_config``), and that file's lines (``jsonl_objects``,
``assistant_text``).

``train-rm``, ``train-dpo`` and ``train-sft`` read one JSON object: the trainer's config fields, and
``"data": {"path": "preferences.jsonl"}`` (a relative path is read from the config file's
folder). Every way a file can be unreadable is a ConfigError naming what is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from .errors import ConfigError, DataError, EngineError, unreadable_json


def run_cli(body: Callable[[], int]) -> int:
    """``body()``'s exit code, as every engine command answers: a user error (EngineError) is
    one line on stderr and 2, Ctrl-C is 130, a reader that closed the output early 0."""
    try:
        return body()
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of the output left early (``default-config --explain | head``): nothing is
        # wrong, so no traceback; stdout goes to /dev/null so Python's own flush at exit is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# The web app's and the worker's variable (README), read first, so that a machine set up for the
# worker converts once for both; STEER_MODEL_CACHE is the name the commands read before, kept.
MODEL_CACHE_VARIABLES = ("STEER_MODEL_CACHE_DIR", "STEER_MODEL_CACHE")
DEFAULT_MODEL_CACHE_DIR = Path("var/models")


def add_model_cache_dir_option(parser: argparse.ArgumentParser) -> None:
    """``--model-cache-dir``, as every command that loads a policy takes it."""
    parser.add_argument(
        "--model-cache-dir",
        type=Path,
        help="folder of the built-in models converted from GGUF: converted on the first run, read from "
        "there after (default: $STEER_MODEL_CACHE_DIR, as the web app's worker reads it, else "
        "$STEER_MODEL_CACHE, else var/models (models in $STEER_VAR_DIR when that is set, as the web "
        "app's default)",
    )


def model_cache_dir(given: Path | None, environ: Mapping[str, str]) -> Path:
    """``--model-cache-dir`` when given, else the first of MODEL_CACHE_VARIABLES set (not empty) in
    ``environ``, else ``models`` in $STEER_VAR_DIR (where the web app's worker keeps it then), else
    var/models. ``environ`` is passed in: only ``__main__`` reads the process's."""
    if given is not None:
        return given
    for name in MODEL_CACHE_VARIABLES:
        if environ.get(name):
            return Path(environ[name])
    if environ.get("STEER_VAR_DIR"):
        return Path(environ["STEER_VAR_DIR"]) / "models"
    return DEFAULT_MODEL_CACHE_DIR


def read_cli_config(
    path: Path, example: str = "preferences.jsonl"
) -> tuple[dict, Path]:
    """(the config's fields without ``data``, the data file's path); ``example`` is the file name
    the message for a config without one shows."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            "config", f"cannot read {path}: {exc.strerror or exc}"
        ) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(
            "config", f"{path} is not JSON ({exc.msg} at line {exc.lineno})"
        ) from exc
    except (
        ValueError,
        RecursionError,
    ) as exc:  # not UTF-8, too deep, a 5,000-digit number
        raise ConfigError("config", unreadable_json(str(path), exc)) from None
    if not isinstance(data, dict):
        raise ConfigError("config", f"{path} must hold a JSON object")
    data = dict(data)
    source = data.pop("data", None)
    if not isinstance(source, dict) or not isinstance(source.get("path"), str):
        raise ConfigError(
            "data.path", f'the config needs "data": {{"path": "{example}"}}'
        )
    if set(source) != {"path"}:
        raise ConfigError(
            "data",
            f"unknown key(s) {sorted(set(source) - {'path'})}; only path is read",
        )
    data_path = Path(source["path"])
    if not data_path.is_absolute():
        data_path = path.parent / data_path
    return data, data_path


def jsonl_objects(path: Path, what: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a JSONL file of ``what`` (``"preferences"``);
    DataError naming the file, or the file and line, when it cannot be read or a line is no JSON object."""
    try:
        lines = (
            Path(path).read_text(encoding="utf-8").split("\n")
        )  # not splitlines: JSON allows U+2028 raw
    except OSError as exc:
        raise DataError(
            f"cannot read {what} from {path}: {exc.strerror or exc}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(unreadable_json(str(path), exc)) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        except (ValueError, RecursionError) as exc:
            raise DataError(unreadable_json(f"{path}:{number}", exc)) from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: each line must be a JSON object")
        yield number, row


def assistant_text(completion):
    """A completion in TRL's conversational form (assistant messages only) as its text, the turns
    joined by newlines; anything else as it is."""
    if (
        isinstance(completion, list)
        and completion
        and all(
            isinstance(m, dict)
            and m.get("role") == "assistant"
            and isinstance(m.get("content"), str)
            for m in completion
        )
    ):
        return "\n".join(m["content"] for m in completion)
    return completion
