from django.core.management.base import BaseCommand, CommandError

from webapp.core.preflight import run_checks


class Command(BaseCommand):
    help = "Check that the database and the Celery broker answer; exit 1 with a clear message if not."

    def handle(self, *args, **options):
        results = run_checks()
        for result in results:
            style = self.style.SUCCESS if result.ok else self.style.ERROR
            self.stdout.write(style(f"{'ok ' if result.ok else 'ERR'} {result.name}: {result.message}"))
        failed = [r for r in results if not r.ok]
        if failed:
            raise CommandError(f"preflight failed ({', '.join(r.name for r in failed)}): see the ERR lines above")
