
class DatasetImportError(Exception):
    """An import that was refused as a whole; ``errors`` lists (line number, message)."""

    def __init__(self, errors: list[tuple[int, str]], unit: str = "line"):
        self.errors = errors
        self.unit = unit  # "row" for a Parquet file
        shown = "; ".join(f"{unit} {n}: {msg}" for n, msg in errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(f"nothing imported, {len(errors)} bad {unit}(s): {shown}{more}")


class DatasetError(Exception):
    """A dataset that cannot be made as asked, whatever its file holds; ``field`` names the
    input at fault (``name``: another dataset of the project has it, in any case)."""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class DatasetInUse(Exception):
    """A dataset that runs were trained on, which they keep: it cannot be deleted."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)
