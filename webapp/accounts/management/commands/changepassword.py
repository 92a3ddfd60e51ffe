"""Django's ``changepassword``, revoking the user's API tokens with the new password (this app
comes before ``django.contrib.auth`` in INSTALLED_APPS, so its command is the one run)."""

import getpass

from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import changepassword
from django.db import transaction

from webapp.accounts.services import api_tokens_revoke_all


class Command(changepassword.Command):
    help = changepassword.Command.help + " Revokes the user's API tokens."

    def handle(self, *args, **options):
        User = get_user_model()
        with transaction.atomic(using=options["database"]):
            result = super().handle(*args, **options)
            user = User._default_manager.using(options["database"]).get(
                **{User.USERNAME_FIELD: options["username"] or getpass.getuser()})
            revoked = api_tokens_revoke_all(user=user)
        return f"{result}; revoked {revoked} API token{'s' if revoked != 1 else ''}"
