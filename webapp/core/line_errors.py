"""A refused import's bad lines, kept to a bounded number however long the file.

Every import (prompt datasets, comparison tasks, preference pairs) reads the whole file to name
its bad lines, then stores nothing if there is one. A file of the wrong shape (Alpaca's 52,000
lines, a 200,000-line dump) has an error on every line: keeping each message held the whole
file's worth of text in memory to show a hundred of them.
"""

from collections.abc import Iterable

KEPT_LINE_ERRORS = 100  # what the import pages list; the API's message quotes the first 10


class LineErrors(list):
    """(line number, message) pairs as a parser appends them: the first KEPT_LINE_ERRORS kept,
    the others only counted. ``total`` counts them all, ``more`` those not kept. Replacing the
    whole list (``errors[:] = [...]``, a file that is one JSON array) starts the count again."""

    def __init__(self, items: Iterable[tuple[int, str]] = ()):
        super().__init__()
        self.total = 0
        self.extend(items)

    def append(self, item: tuple[int, str]) -> None:
        self.total += 1
        if len(self) < KEPT_LINE_ERRORS:
            super().append(item)

    def extend(self, items: Iterable[tuple[int, str]]) -> None:
        for item in items:
            self.append(item)

    def __setitem__(self, index, value) -> None:
        if not isinstance(index, slice) or index != slice(None):
            raise TypeError("LineErrors is only appended to, or replaced whole (errors[:] = [...])")
        self.clear()
        self.extend(value)

    def clear(self) -> None:
        super().clear()
        self.total = 0

    @property
    def more(self) -> int:
        return self.total - len(self)

    @classmethod
    def of(cls, errors: Iterable[tuple[int, str]]) -> "LineErrors":
        """``errors`` as LineErrors (a parser's own, as it is; a list made on the spot, copied)."""
        return errors if isinstance(errors, cls) else cls(errors)


def line_errors_message(errors: LineErrors, quoted: list[str], unit: str = "line") -> str:
    """A refusal in one message: how many bad lines, ``quoted`` (the first few, as the caller
    words them) and how many more there are."""
    more = errors.total - len(quoted)
    return (f"nothing imported, {errors.total:,} bad {unit}(s): {'; '.join(quoted)}"
            + (f" … and {more:,} more {unit}s with errors" if more else ""))
