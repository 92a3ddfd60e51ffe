"""Errors a user can cause by what they hand the engine (configs, data, paths)."""


class EngineError(Exception):
    """Base class of the engine's user-facing errors."""


class ConfigError(EngineError, ValueError):
    """A config value is missing, unknown or out of range.

    ``field`` is the dotted path of the offending key (``"algorithm.num_generations"``),
    so the web form and the CLI can point at it.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class DataError(EngineError, ValueError):
    """The prompts or preference data handed to the engine cannot be used."""


class ModelLoadError(EngineError, OSError):
    """A policy or reward model could not be found or loaded."""
