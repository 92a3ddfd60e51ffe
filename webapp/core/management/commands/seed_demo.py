from django.core.management.base import BaseCommand

from webapp.core.demo import DEMO_USERNAME, demo_password_reset, seed_demo


class Command(BaseCommand):
    help = "Create the demo user (with a generated password, printed once) and the demo project."

    def add_arguments(self, parser):
        parser.add_argument("--reset-password", action="store_true", help="Give the demo user a new password and print it.")

    def handle(self, *args, reset_password=False, **options):
        project, password = seed_demo()
        if reset_password and password is None:
            password, revoked = demo_password_reset()
            self.stdout.write(f"Revoked {revoked} API token{'s' if revoked != 1 else ''} of {DEMO_USERNAME}.")
        self.stdout.write(f"Demo project: {project.name} (id {project.id})")
        if password:
            self.stdout.write(self.style.SUCCESS(f"Login: {DEMO_USERNAME} / {password}   (shown once; keep it)"))
        else:
            self.stdout.write(f"Login: {DEMO_USERNAME} (password shown when it was created; "
                              "`make demo-password` sets a new one)")
