class ProjectError(Exception):
    """A project or membership request that cannot be honoured; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class LastOwnerError(ProjectError):
    """The change would leave the project without an owner (the API answers 409: the request is
    well-formed, the project's state forbids it)."""
