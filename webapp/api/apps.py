from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "webapp.api"
    label = "api"

    def ready(self):
        from webapp.api import schema  # noqa: F401 - registers the token scheme with drf-spectacular
