from webapp.core.line_errors import LineErrors, line_errors_message


class DatasetImportError(Exception):
    """An import that was refused as a whole; ``errors`` lists (line number, message), the first
    100 of them (``errors.total`` counts them all)."""

    def __init__(self, errors: list[tuple[int, str]], unit: str = "line"):
        self.errors = LineErrors.of(errors)  # the first 100 and the count of all
        self.unit = unit  # "row" for a Parquet file
        super().__init__(line_errors_message(self.errors, [f"{unit} {n}: {msg}" for n, msg in self.errors[:10]], unit))


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
