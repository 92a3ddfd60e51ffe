class RunError(Exception):
    """A request about a run that cannot be honoured; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class IllegalTransition(RunError):
    pass


class IdempotencyKeyReused(RunError):
    """An Idempotency-Key that created a run came back with another request body."""


class QueueUnavailable(RunError):
    """The broker refused the launched run's task; the run was withdrawn, so nothing changed."""


class PolicyError(Exception):
    """A policy that cannot be registered as asked; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class PolicyInUse(PolicyError):
    """A policy that runs trained or evaluated, which they keep: it cannot be deleted."""
