"""The data a reward-model, DPO or SFT run trains on, kept as its first attempt resolved it.

A run's data is a query (labels through ``through_label`` that count, a pair set, a dataset),
and what that query answers can change after the launch: a label rejected, restored or
withdrawn. The first attempt therefore writes what it read to a file in the run's folder
(``<run.checkpoint_dir>/data/<kind's file>``), before training; every later attempt (a worker
lost, a release) reads that file instead of querying again, so a run resumed from a checkpoint
goes on with the very pairs, order and count its planned steps and checkpointed positions
were made from, as a TRL or verl run goes on with its dataset file.

The file is JSON lines: a header ``{"format": "steer-run-data", "version": 1, "kind", "count",
"data"}`` (``data``: the run's data section it was read for), one line per engine object (its
dataclass fields by name: the prompt as a string or its list of chat messages, margins,
rankings, as they are), then a trailer ``{"records": count, "sha256": <hex of the record
lines' bytes>}``. JSON is written ASCII-only, so any string comes back as it went. A file cut
short, or altered, fails the attempt (DataSnapshotError) rather than training on part of the
data; it is written to a temporary name, flushed to disk and renamed, so a worker killed while
writing leaves either no snapshot or a whole one.

A reward-model run's file holds every record, the held-out ones included: the trainer splits
off its evaluation share by position, with the run's ``eval_fraction`` and ``seed``, so the same
records in the same order give the same split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from webapp.rewards.errors import DataSnapshotError

log = logging.getLogger(__name__)

FORMAT = "steer-run-data"
VERSION = 1
FOLDER = "data"

# kind → (the engine's module and class, the file name in the run's data folder, what one is called)
KINDS = {
    "preference_pairs": ("workers.engine.dpo", "PreferencePair", "pairs.jsonl", "pairs"),
    "sft_examples": ("workers.engine.sft", "SFTExample", "examples.jsonl", "examples"),
    "preference_records": ("workers.engine.rm_trainer", "PreferenceRecord", "preferences.jsonl", "records"),
}


def _kind(kind: str) -> tuple[type, str, str]:
    if kind not in KINDS:
        raise ValueError(f"no data snapshot kind {kind!r}; one of {', '.join(KINDS)}")
    module, name, file_name, noun = KINDS[kind]
    return getattr(importlib.import_module(module), name), file_name, noun


def _line(value) -> bytes:
    # ASCII-only: every character (lone surrogates too) escaped, so a line is one line whatever the text holds.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def snapshot_lines(kind: str, items: Sequence, data: dict) -> Iterator[bytes]:
    """The snapshot of ``items`` (engine objects of ``kind``, read for the data section ``data``)
    as lines of bytes, each ending in a newline: header, one line per object, trailer."""
    cls, _, _ = _kind(kind)
    names = [f.name for f in dataclasses.fields(cls)]
    yield _line({"format": FORMAT, "version": VERSION, "kind": kind, "count": len(items), "data": data})
    digest = hashlib.sha256()
    for index, item in enumerate(items):
        if type(item) is not cls:
            raise TypeError(f"item {index} is a {type(item).__name__}, not a {cls.__name__}")
        line = _line({name: getattr(item, name) for name in names})
        digest.update(line)
        yield line
    yield _line({"records": len(items), "sha256": digest.hexdigest()})


def snapshot_items(kind: str, lines: Iterable[bytes], data: dict | None = None) -> list:
    """The engine objects of a snapshot's ``lines`` (as ``snapshot_lines`` gives them, or a file
    opened in binary mode), or DataSnapshotError saying what is wrong: not a snapshot of this
    kind (or, given ``data``, of another data section), cut short, altered, or longer than it says."""
    cls, _, noun = _kind(kind)
    names = {f.name for f in dataclasses.fields(cls)}
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    lines = iter(lines)
    header = _json(next(lines, b""), "its header")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DataSnapshotError("it is not a Steer run data snapshot (its first line is no snapshot header)")
    if header.get("version") != VERSION:
        raise DataSnapshotError(f"it is in version {header.get('version')!r} of the format; this Steer reads {VERSION}")
    if header.get("kind") != kind:
        raise DataSnapshotError(f"it holds {header.get('kind')!r}, not {kind!r}")
    count = header.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise DataSnapshotError(f"its header gives no count of {noun} ({count!r})")
    if data is not None and header.get("data") != data:
        raise DataSnapshotError(f"it was written for the data {header.get('data')!r}, not this run's {data!r}")
    items, digest = [], hashlib.sha256()
    for index in range(count):
        line = next(lines, None)
        if line is None:
            raise DataSnapshotError(f"it is cut short: {index} of its {count} {noun}, then nothing")
        value = _json(line, f"{noun[:-1]} {index}")
        if not isinstance(value, dict) or not required <= value.keys() <= names:
            shown = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise DataSnapshotError(f"{noun[:-1]} {index} is not a {cls.__name__} (it holds {shown})")
        digest.update(line)
        items.append(cls(**value))
    trailer = _json(next(lines, b""), f"its end (after {count} {noun})")
    if not isinstance(trailer, dict) or trailer.get("records") != count or "sha256" not in trailer:
        raise DataSnapshotError(f"it does not end after its {count} {noun} as a snapshot ends")
    if trailer["sha256"] != digest.hexdigest():
        raise DataSnapshotError(f"its {noun} are not those it was written with (their checksum differs)")
    if next(lines, None) is not None:
        raise DataSnapshotError(f"it goes on after its end ({count} {noun})")
    return items


def _json(line: bytes, what: str):
    if not line:
        raise DataSnapshotError(f"it is cut short: {what} is missing")
    if not line.endswith(b"\n"):
        raise DataSnapshotError(f"it is cut short: {what} is not a whole line")
    try:
        return json.loads(line)
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
        raise DataSnapshotError(f"{what} is not JSON ({exc})") from None


def snapshot_path(folder: Path, kind: str) -> Path:
    """Where the snapshot of ``kind`` lies in a run's folder."""
    return Path(folder) / FOLDER / _kind(kind)[1]


def snapshot_write(folder: Path, kind: str, items: Sequence, data: dict) -> Path:
    """Write the snapshot of ``items`` into the run's ``folder`` atomically (a temporary file in
    the same folder, flushed to disk, renamed over the snapshot, the folder flushed); its path."""
    path = snapshot_path(folder, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):  # a write a killed worker left
        leftover.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.writelines(snapshot_lines(kind, items, data))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder_fd)
    finally:
        os.close(folder_fd)
    return path


def snapshot_read(folder: Path, kind: str, data: dict | None = None) -> list | None:
    """The objects of the run's snapshot of ``kind``; None when there is none; DataSnapshotError
    naming the file when it is damaged."""
    path = snapshot_path(folder, kind)
    try:
        with path.open("rb") as lines:
            return snapshot_items(kind, lines, data)
    except FileNotFoundError:
        return None
    except DataSnapshotError as exc:
        raise DataSnapshotError(
            f"the run's data snapshot {path} is damaged: {exc}. It holds the data the run's first attempt "
            "trained on; rather than train on part of it or on other data, this attempt stops. "
            "Launch the run again to train on the data as it is now") from None


def run_training_data(*, run, attempt: int, kind: str, query: Callable[[], list]) -> list:
    """What a reward-model, DPO or SFT run's attempt trains on: on the first attempt, ``query()``
    (the run's data read from the database), written to the run's snapshot before training; on a
    later one, the snapshot. A later attempt that finds none (its run launched before Steer kept
    them, or a first attempt that ended before writing it) queries again, says so in the worker's
    log, and keeps what it read as the snapshot for the attempts after it."""
    folder, data = run.checkpoint_dir, run.config["data"]
    path = snapshot_path(folder, kind)
    _, _, noun = _kind(kind)
    if attempt > 1:
        items = snapshot_read(folder, kind, data)
        if items is not None:
            log.info("run %s attempt %s: trains on the data snapshot %s (%d %s) its first attempt wrote, "
                     "not on the database as it is now", run.pk, attempt, path, len(items), noun)
            return items
        resumes = (Path(folder) / "checkpoints").is_dir()
        log.warning("run %s attempt %s: no data snapshot at %s (%s): read its data from the database again, "
                    "where labels rejected, restored or withdrawn since the launch change it",
                    run.pk, attempt, path,
                    "it has checkpoints: a run launched before Steer kept snapshots" if resumes
                    else "an earlier attempt ended before writing it")
    items = query()
    snapshot_write(folder, kind, items, data)
    log.info("run %s attempt %s: wrote the data it trains on (%d %s) to %s; later attempts read it from there",
             run.pk, attempt, len(items), noun, path)
    return items
