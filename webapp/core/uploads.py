"""The text of an uploaded import file (prompts, tasks, preference pairs), read with a limit.

Django keeps an upload over 32 MB in a temporary file, but an import reads all of it into
memory to parse it, so without a limit one upload could take the web process's memory.
"""

from __future__ import annotations

MAX_IMPORT_BYTES = 256 * 1024 * 1024


def upload_text(upload) -> str:
    """The upload decoded as UTF-8 (a byte-order mark is dropped), or ValueError saying why not."""
    if upload.size > MAX_IMPORT_BYTES:
        raise ValueError(f"the file is {upload.size / 2**20:.0f} MB; an import takes at most "
                         f"{MAX_IMPORT_BYTES // 2**20} MB (split it into several)")
    data = upload.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # utf-8-sig counts from after a UTF-8 byte-order mark
        raise ValueError(_binary_format(data)
                         or _not_utf8(data, exc.start + 3 * data.startswith(b"\xef\xbb\xbf"))) from None
    if "\x00" in text[:2]:  # UTF-16 without its mark: every other byte of ASCII text is NUL, valid UTF-8
        raise ValueError(UTF16)
    return text


UTF16 = "the file is UTF-16 text (every other byte is NUL); save it as UTF-8"


def _not_utf8(data: bytes, start: int) -> str:
    """Why ``data`` is no UTF-8, where a user can find it: UTF-16 (Excel's "Unicode text" and
    PowerShell's default) by its byte-order mark, otherwise the line and byte of the first
    byte that is no UTF-8 (a byte offset alone is no help in a file of a million lines)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return UTF16.replace("every other byte is NUL", "it starts with a UTF-16 byte-order mark")
    line = data.count(b"\n", 0, start) + 1
    column = start - (data.rfind(b"\n", 0, start) + 1) + 1
    return (f"the file is not UTF-8 text (byte {start}, line {line}, column {column}: 0x{data[start]:02X}); "
            "save it as UTF-8 (it may be Latin-1 or Windows-1252)")


def _binary_format(data: bytes) -> str | None:
    """What to say of a binary file that people export their data as, else None."""
    if data[:4] == b"PAR1" and data[-4:] == b"PAR1":
        return ("the file is Parquet (as verl's data files and the Hugging Face Hub's are); an import reads "
                "JSONL or CSV: convert it with pandas.read_parquet(path).to_json(out, orient=\"records\", "
                "lines=True), or datasets' Dataset.to_json")
    if data[:2] == b"\x1f\x8b":
        return "the file is gzip-compressed; decompress it (gunzip) and import the JSONL or CSV inside"
    return None


def upload_form_text(upload) -> str:
    """``upload_text`` for a form's ``clean_<file>``: its ValueError as the field's error."""
    from django import forms

    try:
        return upload_text(upload)
    except ValueError as exc:
        message = str(exc)
        raise forms.ValidationError(f"{message[:1].upper()}{message[1:]}.") from None
