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


class IdempotentOutcomeGone(IdempotencyKeyReused):
    """An Idempotency-Key came back with the request that made a sweep, some of whose runs were
    deleted since: the first outcome can no longer be answered, and nothing is created again.
    ``deleted`` says which, as a sentence's subject and verb: "its run 2 of 4 (“grpo · …”) was"."""

    def __init__(self, message: str, field: str | None = None, *, deleted: str):
        super().__init__(message, field)
        self.deleted = deleted


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
