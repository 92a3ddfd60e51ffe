class PairImportError(Exception):
    """An import of preference pairs refused as a whole; ``errors`` lists (line number, message)."""

    def __init__(self, errors: list[tuple[int, str]]):
        self.errors = errors
        shown = "; ".join(f"line {n}: {msg}" for n, msg in errors[:10])
        super().__init__(f"nothing imported, {len(errors)} bad line(s): {shown}")
