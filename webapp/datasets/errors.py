
class DatasetImportError(Exception):
    """An import that was refused as a whole; ``errors`` lists (line number, message)."""

    def __init__(self, errors: list[tuple[int, str]]):
        self.errors = errors
        shown = "; ".join(f"line {n}: {msg}" for n, msg in errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(f"nothing imported, {len(errors)} bad line(s): {shown}{more}")


class DatasetInUse(Exception):
    """A dataset that runs were trained on, which they keep: it cannot be deleted."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)
