"""The text of an uploaded import file (prompts, tasks, preference pairs), read a line at a time.

Django keeps an upload over FILE_UPLOAD_MAX_MEMORY_SIZE in a temporary file; an import reads it
from there a chunk at a time, once to check that it is UTF-8 and once to parse it, so the file
is never in the web process's memory whole. Nor are the rows an import parses out of it: prompts
and tasks are stored a batch at a time, pairs written as JSON text to a temporary file (see
``dataset_import``, ``comparison_tasks_import_jsonl`` and ``pair_set_import``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

MAX_IMPORT_BYTES = 256 * 1024 * 1024
BOM = b"\xef\xbb\xbf"
CHUNK_BYTES = 64 * 1024
# A file that fails to parse line by line and opens with "[" is checked for being one JSON
# array by parsing it whole, which only a file up to this size is.
MAX_ARRAY_CHECK_BYTES = 32 * 1024 * 1024


class UploadText:
    """An uploaded file's UTF-8 text (checked by ``upload_text``), read line by line."""

    def __init__(self, upload):
        self.upload = upload
        self.size = upload.size

    def byte_lines(self) -> Iterator[tuple[int, bytes]]:
        """(offset in the file, bytes) of each line with its "\\n", split on "\\n" alone."""
        offset, parts = 0, []
        self.upload.seek(0)
        # Not upload.chunks(), which gives a file Django holds in memory as one chunk, a copy
        while chunk := self.upload.read(CHUNK_BYTES):
            *lines, rest = chunk.split(b"\n")
            for line in lines:
                parts.append(line)
                whole = b"".join(parts) + b"\n"
                yield offset, whole
                offset, parts = offset + len(whole), []
            if rest:
                parts.append(rest)
        if parts:
            yield offset, b"".join(parts)

    def lines(self) -> Iterator[str]:
        """Each line of the text with its "\\n" (the last may have none); a byte-order mark dropped.
        Only "\\n" ends a line, as in ``webapp.core.json_input.jsonl_lines``."""
        for offset, line in self.byte_lines():
            yield (line.removeprefix(BOM) if offset == 0 else line).decode("utf-8")

    def first_bytes(self, count: int) -> bytes:
        self.upload.seek(0)
        return self.upload.read(count)

    def last_bytes(self, count: int) -> bytes:
        self.upload.seek(max(self.size - count, 0))
        return self.upload.read(count)

    def json_array_items(self) -> int | None:
        """How many items the file holds if it is one JSON array, else None; -1 (uncounted) for a
        file too large to parse whole (over MAX_ARRAY_CHECK_BYTES) that opens with "[" and ends
        with "]"."""
        head = next((line.lstrip() for line in self.lines() if line.strip()), "")
        if not head.startswith("["):
            return None
        if self.size > MAX_ARRAY_CHECK_BYTES:
            return -1 if self.last_bytes(64).rstrip().endswith(b"]") else None
        try:
            value = json.loads("".join(self.lines()))
        except (ValueError, RecursionError):
            return None
        return len(value) if isinstance(value, list) else None


def upload_text(upload) -> UploadText:
    """The upload as UTF-8 text to read line by line, or ValueError saying why it is not: too
    large, not UTF-8 (naming the byte and its line), UTF-16, Parquet or gzip. The whole file is
    read here, a chunk at a time, so that a bad byte is found before anything is parsed."""
    if upload.size > MAX_IMPORT_BYTES:
        raise ValueError(f"the file is {upload.size / 2**20:.0f} MB; an import takes at most "
                         f"{MAX_IMPORT_BYTES // 2**20} MB (split it into several)")
    text = UploadText(upload)
    opening = ""
    for number, (offset, line) in enumerate(text.byte_lines(), start=1):
        mark = len(BOM) if offset == 0 and line.startswith(BOM) else 0
        try:
            decoded = line[mark:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(_binary_format(text.first_bytes(4), text.last_bytes(4))
                             or _not_utf8(text.first_bytes(2), offset + mark + exc.start, number,
                                          mark + exc.start + 1, line[mark + exc.start])) from None
        if len(opening) < 2:
            opening += decoded[:2 - len(opening)]
    if "\x00" in opening:  # UTF-16 without its mark: every other byte of ASCII text is NUL, valid UTF-8
        raise ValueError(UTF16)
    return text


UTF16 = "the file is UTF-16 text (every other byte is NUL); save it as UTF-8"


def _not_utf8(head: bytes, start: int, line: int, column: int, byte: int) -> str:
    """Why the file is no UTF-8, where a user can find it: UTF-16 (Excel's "Unicode text" and
    PowerShell's default) by its byte-order mark, otherwise the line and byte of the first
    byte that is no UTF-8 (a byte offset alone is no help in a file of a million lines)."""
    if head in (b"\xff\xfe", b"\xfe\xff"):
        return UTF16.replace("every other byte is NUL", "it starts with a UTF-16 byte-order mark")
    return (f"the file is not UTF-8 text (byte {start}, line {line}, column {column}: 0x{byte:02X}); "
            "save it as UTF-8 (it may be Latin-1 or Windows-1252)")


def _binary_format(head: bytes, tail: bytes) -> str | None:
    """What to say of a binary file that people export their data as, else None."""
    if head == b"PAR1" and tail == b"PAR1":
        return ("the file is Parquet (as verl's data files and the Hugging Face Hub's are); this import reads "
                "JSONL (a prompt dataset's import reads Parquet as it is): convert it with pandas.read_parquet(path).to_json(out, orient=\"records\", "
                "lines=True), or datasets' Dataset.to_json")
    if head[:2] == b"\x1f\x8b":
        return "the file is gzip-compressed; decompress it (gunzip) and import the JSONL or CSV inside"
    return None


def upload_form_text(upload) -> UploadText:
    """``upload_text`` for a form's ``clean_<file>``: its ValueError as the field's error."""
    from django import forms

    try:
        return upload_text(upload)
    except ValueError as exc:
        message = str(exc)
        raise forms.ValidationError(f"{message[:1].upper()}{message[1:]}.") from None
