"""`make run`'s server: gunicorn and one Celery worker, stopped together by Ctrl-C."""

import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from webapp.core.preflight import run_checks

WEB_GRACE_S = 20
# On stop the worker releases its run after the step in progress (a step of SmolLM2 on a
# laptop's CPU can take a minute) and saves a checkpoint there.
WORKER_GRACE_S = 300


class Command(BaseCommand):
    help = "Start gunicorn and one Celery worker (queues default and gpu); Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--no-worker", action="store_true", help="Serve the web app only.")

    def handle(self, *args, bind, web_workers, no_worker, **options):
        failed = [r for r in run_checks() if not r.ok]
        if failed:
            raise CommandError("; ".join(r.message for r in failed))
        python = sys.executable
        commands = [[python, "-m", "gunicorn", "webapp.wsgi:application", "--bind", bind,
                     "--workers", str(web_workers), "--threads", "4", "--access-logfile", "-",
                     "--graceful-timeout", "10", "--no-control-socket"]]  # no socket left in ~/.gunicorn
        if not no_worker:
            commands.append([python, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "default,gpu",
                             "--concurrency", "1", "--loglevel", "INFO", "-n", "steer-local@%h"])
        procs = [subprocess.Popen(cmd) for cmd in commands]
        host, _, port = bind.rpartition(":")
        self.stdout.write(self.style.SUCCESS(f"Steer is up: http://{host or '127.0.0.1'}:{port}/   (Ctrl-C stops it)"))
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(p.poll() is None for p in procs):
                time.sleep(0.5)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            if len(procs) > 1 and procs[1].poll() is None:
                self.stdout.write(f"Stopping. A run in progress finishes its step first (up to {WORKER_GRACE_S} s), "
                                  "keeps a checkpoint there and resumes from it on the next start; Ctrl-C again "
                                  "stops the worker at once.")
            for p, grace in zip(procs, (WEB_GRACE_S, WORKER_GRACE_S)):
                try:
                    p.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    p.kill()
        exited = [p for p in procs if p.returncode not in (0, -signal.SIGTERM, None)]
        if not stopping and exited:
            raise CommandError(f"{' '.join(commands[procs.index(exited[0])][:4])} exited with {exited[0].returncode}")
        self.stdout.write("Stopped.")
