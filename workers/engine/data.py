"""Prompt records, their validation, JSONL reading, and the per-step prompt schedule."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, unreadable_json


@dataclass(frozen=True)
class PromptRecord:
    """One training prompt: text, or chat messages [{"role": ..., "content": ...}], with an
    optional reference answer and an id reported back with its rollouts."""

    prompt: str | list[dict]
    reference: str | None = None
    id: int | str | None = None


def validate_prompts(
    prompts: Sequence[PromptRecord | Mapping[str, Any]],
    *,
    need_references: str | None = None,
) -> list[PromptRecord]:
    """Check prompts before any work; mappings are read as {"prompt", "reference", "id"}.
    ``need_references`` names the reward that compares with each prompt's reference (None: no
    reference needed). Raises DataError naming the first bad record."""
    if prompts is None or len(prompts) == 0:
        raise DataError("the dataset is empty: give at least one prompt")
    records = []
    for i, item in enumerate(prompts):
        record = _as_record(item, f"prompt #{i}")
        where = f"prompt #{i}" + (f" (id {record.id})" if record.id is not None else "")
        _check_prompt(record.prompt, where)
        if need_references and record.reference is None:
            raise DataError(
                f"{where} has no reference answer, which {need_references} needs"
            )
        records.append(record)
    return records


def _check_prompt(prompt: Any, where: str) -> None:
    """DataError unless ``prompt`` is non-blank text or a non-empty list of chat messages;
    ``where`` names it in the message ("prompt #3", "p.jsonl:4: 'prompt'")."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise DataError(f"{where} is empty")
    elif isinstance(prompt, list) and prompt:
        for message in prompt:
            if not (
                isinstance(message, Mapping)
                and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)
            ):
                raise DataError(
                    f"{where}: chat messages need string 'role' and 'content'"
                )
    else:
        raise DataError(
            f"{where}: a prompt is a string or a non-empty list of messages"
        )


def _as_record(item: Any, where: str) -> PromptRecord:
    if isinstance(item, PromptRecord):
        record = item
    elif isinstance(item, Mapping):
        unknown = set(item) - {"prompt", "reference", "id"}
        if "prompt" not in item or unknown:
            raise DataError(
                f"{where}: expected keys prompt, reference, id; got {sorted(item)}"
            )
        record = PromptRecord(item["prompt"], item.get("reference"), item.get("id"))
    else:
        raise DataError(f"{where}: expected a PromptRecord or an object, got {item!r}")
    if record.reference is not None and not isinstance(record.reference, str):
        record = PromptRecord(record.prompt, str(record.reference), record.id)
    return record


def read_prompts_jsonl(path: Path) -> list[PromptRecord]:
    """Read {"prompt": ..., "reference": ..., "id": ...} lines; DataError naming the file and the
    line (from 1, as an editor counts them) of the first bad one, and the field at fault."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prompt file not found: {path}")
    records = []
    # "\n" alone ends a line: str.splitlines would also cut at U+2028, U+2029 or U+0085, which
    # JSON allows raw inside a string
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(unreadable_json(str(path), exc)) from None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        except (
            ValueError,
            RecursionError,
        ) as exc:  # a 5,000-digit number, nesting past the parser
            raise DataError(unreadable_json(f"{path}:{number}", exc)) from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: each line must be a JSON object")
        record = _as_record(row, f"{path}:{number}")
        _check_prompt(record.prompt, f"{path}:{number}: 'prompt'")
        records.append(record)
    if not records:
        raise DataError(f"{path}: the dataset is empty: give at least one prompt")
    return records


def step_prompt_indices(
    num_prompts: int, per_step: int, seed: int, step: int
) -> list[int]:
    """The prompts of step ``step`` (from 1): consecutive slices of a stream of epochs, each
    epoch a permutation seeded by (seed, epoch). A pure function of its arguments, so a resumed
    run sees the same prompts."""
    out, permutations = [], {}
    for position in range((step - 1) * per_step, step * per_step):
        epoch, offset = divmod(position, num_prompts)
        if epoch not in permutations:
            permutations[epoch] = np.random.default_rng([seed, epoch]).permutation(
                num_prompts
            )
        out.append(int(permutations[epoch][offset]))
    return out


def refill_prompt_indices(
    num_prompts: int, count: int, seed: int, step: int, round_: int
) -> list[int]:
    """Extra prompts for refill round ``round_`` (from 1) of ``step``, seeded by all four."""
    rng = np.random.default_rng([seed, step, round_, 1])
    return [
        int(i) for i in rng.choice(num_prompts, size=count, replace=count > num_prompts)
    ]


def sampling_seed(seed: int, step: int, round_: int) -> int:
    """Seed of the torch generator that draws the completions of one round of one step."""
    return int(
        np.random.SeedSequence([seed, step, round_]).generate_state(1, np.uint64)[0]
        >> np.uint64(1)
    )
