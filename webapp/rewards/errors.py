from webapp.core.line_errors import LineErrors, line_errors_message
from workers.engine.errors import EngineError


class PairImportError(Exception):
    """An import of preference pairs refused as a whole; ``errors`` lists (line number, message),
    the first 100 of them (``errors.total`` counts them all)."""

    def __init__(self, errors: list[tuple[int, str]]):
        self.errors = LineErrors.of(errors)
        super().__init__(line_errors_message(self.errors, [f"line {n}: {msg}" for n, msg in self.errors[:10]]))


class RewardModelError(Exception):
    """A request about a reward model that cannot be honoured; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class DataSnapshotError(EngineError):
    """A run's data snapshot (``webapp.rewards.data_snapshots``) that cannot be read whole: the
    attempt fails with this one-line message (an EngineError) instead of training on part of it."""
