class ProjectError(Exception):
    """A project or membership request that cannot be honoured; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class LastOwnerError(ProjectError):
    """The change would leave the project without an owner (the API answers 409: the request is
    well-formed, the project's state forbids it)."""


class CreatorNotConfirmed(ProjectError):
    """The account was created by someone else, who saw its generated password: adding it needs
    the adder to confirm, naming its creator (``creator``)."""

    def __init__(self, message: str, creator: str):
        super().__init__(message, field="username")
        self.creator = creator
