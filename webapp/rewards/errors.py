from workers.engine.errors import EngineError


class PairImportError(Exception):
    """An import of preference pairs refused as a whole; ``errors`` lists (line number, message)."""

    def __init__(self, errors: list[tuple[int, str]]):
        self.errors = errors
        shown = "; ".join(f"line {n}: {msg}" for n, msg in errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(f"nothing imported, {len(errors)} bad line(s): {shown}{more}")


class RewardModelError(Exception):
    """A request about a reward model that cannot be honoured; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class DataSnapshotError(EngineError):
    """A run's data snapshot (``webapp.rewards.data_snapshots``) that cannot be read whole: the
    attempt fails with this one-line message (an EngineError) instead of training on part of it."""
