"""Django's ``createsuperuser``, refusing a username that would pass for an existing account's
(``webapp.accounts.services.username_clean``); this app comes before ``django.contrib.auth``
in INSTALLED_APPS, so its command is the one run."""

from django.contrib.auth.management.commands import createsuperuser

from webapp.accounts.errors import AccountError
from webapp.accounts.services import username_clean


class Command(createsuperuser.Command):
    def _validate_username(self, username, verbose_field_name, database):
        error = super()._validate_username(username, verbose_field_name, database)
        if error is None:
            try:
                username_clean(username)
            except AccountError as exc:
                return f"Error: {exc.message}."
        return error
