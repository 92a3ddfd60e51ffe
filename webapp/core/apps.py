from django.apps import AppConfig
from django.core import checks

from webapp.core.checks import run_folders_apart


class CoreConfig(AppConfig):
    """Operations: health check, preflight checks, the demo seed and the one-command server."""

    name = "webapp.core"
    label = "core"

    def ready(self) -> None:
        checks.register(run_folders_apart)
