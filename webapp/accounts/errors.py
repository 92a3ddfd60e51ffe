class AccountError(Exception):
    """An account request that cannot be honoured; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class TokenExpired(AccountError):
    """An API token past its ``expires_at``: refused with a message saying so (not as unknown)."""
