#!/usr/bin/env python
"""Django's command-line utility for Steer."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - reads the environment (webapp/environment.py) once, here
    except ImproperlyConfigured as exc:  # a bad variable: one line naming it, not a traceback
        sys.stderr.write(f"Steer cannot start: {exc}\n")
        sys.exit(2)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
