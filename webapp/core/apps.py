from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Operations: health check, preflight checks, the demo seed and the one-command server."""

    name = "webapp.core"
    label = "core"
