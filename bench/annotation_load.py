"""Benchmark: 50 annotators labelling at once against gunicorn + PostgreSQL.

    .venv/bin/python bench/annotation_load.py [--annotators 50 --labels-each 20 --tasks 2000 \\
        --overlap 3 --workers 4 --threads 1]

Fresh database ``steer_bench_h5`` on 127.0.0.1:5432, migrated and seeded with one project,
N annotators, T pairwise comparison tasks (overlap 3) carrying a two-criterion rubric. Steer
runs under gunicorn (``webapp.wsgi``) with its access log recording each request's server
time (``%(D)s``, µs from request parsed to response written, so queueing in the client
or kernel is not counted). Each annotator thread logs in, opens the workspace (GET: the
next task is assigned), then submits L labels the way the htmx workspace does: one POST
per label that stores it (with rubric scores) and answers with the next task swapped in.
Prints p50/p95/p99 server and client times per endpoint, labels/s, and checks the database:
one label per submission, no annotator twice on a task, no task over its overlap.
Not a test: run by hand on the real stack.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
PG = "postgres://postgres@127.0.0.1:5432"
DB = "steer_bench_h5"
PASSWORD = "bench-annotator-password-1"

TASK_ID = re.compile(r'data-task="(\d+)"')
SUBMISSION_KEY = re.compile(r'name="submission_key" value="([0-9a-f]+)"')
CSRF = re.compile(r'"X-CSRFToken": "([^"]+)"')
SCORE_SELECT = re.compile(r'<select name="(score_\d+_\d+)"[^>]*>(.*?)</select>', re.S)
OPTION_VALUE = re.compile(r'<option value="(\d+)"')


def fresh_database() -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB}"')


def steer_env(var_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
    env.update(DATABASE_URL=f"{PG}/{DB}", STEER_VAR_DIR=str(var_dir), DEBUG="0",
               DJANGO_SETTINGS_MODULE="webapp.settings", SECRET_KEY="bench-only-not-secret")
    return env


SEED = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from webapp.feedback.services import comparison_tasks_import_jsonl, rubric_create
from webapp.projects.models import Membership, Project, Role
call_command("migrate", verbosity=0)
args = json.loads({args!r})
project = Project.objects.create(name="bench", slug="bench", annotation_guidelines="Prefer the **correct** answer.")
User = get_user_model()
for i in range(args["annotators"]):
    user = User.objects.create_user(username=f"annotator{{i}}", password=args["password"])
    Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
rubric = rubric_create(project=project, name="quality", criteria=[
    {{"name": "Correct", "scale": "binary", "weight": 2}}, {{"name": "Clear", "scale": "likert5"}}])
lines = [json.dumps({{"prompt": f"Question {{i}}: what is {{i}} + {{i}}? Show your work.",
                      "completions": [f"{{i}} + {{i}} = {{2 * i}}.\\n\\n```python\\nprint({{i}} + {{i}})\\n```",
                                      f"The answer is {{2 * i + 1}}, because **reasons**."]}})
         for i in range(args["tasks"])]
comparison_tasks_import_jsonl(project=project, content="\\n".join(lines), required_labels=args["overlap"], rubric=rubric)
from django.db import connection
if connection.vendor == "postgresql":
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # planner statistics, as autovacuum would have them on a live database
print(project.id)
"""


def seed(env: dict, args) -> int:
    payload = json.dumps({"annotators": args.annotators, "tasks": args.tasks, "overlap": args.overlap,
                          "password": PASSWORD})
    out = subprocess.run([sys.executable, "-c", SEED.format(args=payload)], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict, port: int, workers: int, threads: int, access_log: Path, log: Path):
    cmd = [str(Path(sys.executable).parent / "gunicorn"), "webapp.wsgi:application", "-b", f"127.0.0.1:{port}",
           "-w", str(workers), "--threads", str(threads), "--access-logfile", str(access_log),
           "--access-logformat", '%(m)s %(U)s %(s)s %(D)s']
    out = log.open("w")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}; see {log}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit("gunicorn did not come up in 60 s")


class Annotator:
    """One person at the workspace: log in, open it, then submit-and-get-next L times."""

    def __init__(self, base: str, project_id: int, index: int, labels: int, rng: random.Random):
        self.base, self.project_id, self.index, self.labels, self.rng = base, project_id, index, labels, rng
        self.session = requests.Session()
        self.timings: list[tuple[str, float]] = []
        self.submitted: list[tuple[int, str]] = []

    def _timed(self, name: str, method: str, url: str, **kwargs) -> requests.Response:
        t0 = time.perf_counter()
        response = self.session.request(method, url, timeout=30, **kwargs)
        self.timings.append((name, (time.perf_counter() - t0) * 1000))
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {url} -> {response.status_code}: {response.text[:300]}")
        return response

    def run(self) -> None:
        login = self.session.get(f"{self.base}/accounts/login/", timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
        self.session.post(f"{self.base}/accounts/login/", timeout=30, allow_redirects=False,
                          data={"username": f"annotator{self.index}", "password": PASSWORD,
                                "csrfmiddlewaretoken": token})
        page = self._timed("GET annotate (assign next)", "GET", f"{self.base}/projects/{self.project_id}/feedback/annotate/").text
        csrf = CSRF.search(page).group(1)
        for _ in range(self.labels):
            match = TASK_ID.search(page)
            if match is None:
                return  # queue empty
            task_id = int(match.group(1))
            key = SUBMISSION_KEY.search(page).group(1)
            data = {"submission_key": key, "choice": self.rng.choice(["a", "b", "tie", "both_bad"]),
                    "time_spent_ms": str(self.rng.randint(3000, 30000))}
            for name, options in SCORE_SELECT.findall(page):  # score every criterion of both completions
                data[name] = self.rng.choice(OPTION_VALUE.findall(options))
            page = self._timed("POST submit (+ next task)", "POST",
                               f"{self.base}/projects/{self.project_id}/feedback/annotate/{task_id}/submit/",
                               data=data, headers={"X-CSRFToken": csrf, "HX-Request": "true"}).text
            self.submitted.append((task_id, key))


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered * 99
    return {"n": len(ordered), "p50": q[49], "p95": q[94], "p99": q[98], "max": ordered[-1]}


def server_times(access_log: Path) -> dict[str, list[float]]:
    """Server time in ms per endpoint kind, from gunicorn's access log (%(D)s is µs)."""
    kinds: dict[str, list[float]] = {"GET annotate (assign next)": [], "POST submit (+ next task)": []}
    for line in access_log.read_text().splitlines():
        method, path, status, micros = line.split()
        if method == "GET" and path.endswith("/feedback/annotate/"):
            kinds["GET annotate (assign next)"].append(int(micros) / 1000)
        elif method == "POST" and path.endswith("/submit/"):
            kinds["POST submit (+ next task)"].append(int(micros) / 1000)
    return kinds


def check_database(expected: int) -> dict:
    with psycopg.connect(f"{PG}/{DB}") as conn:
        labels = conn.execute("SELECT count(*) FROM feedback_preferencelabel").fetchone()[0]
        duplicates = conn.execute("SELECT count(*) FROM (SELECT task_id, annotator_id FROM feedback_preferencelabel "
                                  "GROUP BY 1, 2 HAVING count(*) > 1) d").fetchone()[0]
        over = conn.execute("SELECT count(*) FROM feedback_comparisontask WHERE label_count > required_labels").fetchone()[0]
        drift = conn.execute("SELECT count(*) FROM feedback_comparisontask t WHERE label_count <> "
                             "(SELECT count(*) FROM feedback_preferencelabel l WHERE l.task_id = t.id)").fetchone()[0]
        scores = conn.execute("SELECT count(*) FROM feedback_criterionscore").fetchone()[0]
    return {"labels": labels, "expected": expected, "duplicate_task_annotator": duplicates,
            "tasks_over_overlap": over, "label_count_drift": drift, "criterion_scores": scores}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--labels-each", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    var_dir = Path(tempfile.mkdtemp(prefix="steer-bench-annotation-"))
    env = steer_env(var_dir)
    fresh_database()
    project_id = seed(env, args)
    port = free_port()
    access_log, log = var_dir / "access.log", var_dir / "gunicorn.log"
    proc = start_gunicorn(env, port, args.workers, args.threads, access_log, log)
    base = f"http://127.0.0.1:{port}"
    try:
        people = [Annotator(base, project_id, i, args.labels_each, random.Random(i)) for i in range(args.annotators)]
        start = time.perf_counter()
        with ThreadPoolExecutor(args.annotators) as pool:
            list(pool.map(lambda a: a.run(), people))
        wall = time.perf_counter() - start
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)

    submitted = sum(len(p.submitted) for p in people)
    client: dict[str, list[float]] = {}
    for p in people:
        for name, ms in p.timings:
            client.setdefault(name, []).append(ms)
    server = server_times(access_log)
    results = {
        "config": vars(args) | {"json": str(args.json) if args.json else None},
        "wall_s": wall, "labels_submitted": submitted, "labels_per_s": submitted / wall,
        "server_ms": {k: percentiles(v) for k, v in server.items()},
        "client_ms": {k: percentiles(v) for k, v in client.items()},
        "database": check_database(submitted),
    }
    print(f"{args.annotators} annotators × {args.labels_each} labels, {args.tasks} tasks (overlap {args.overlap}), "
          f"gunicorn {args.workers} workers × {args.threads} threads, PostgreSQL")
    print(f"wall {wall:.1f} s, {submitted} labels, {submitted / wall:.1f} labels/s")
    for kind in server:
        s, c = results["server_ms"][kind], results["client_ms"].get(kind, {})
        print(f"{kind:28s} n={s.get('n', 0):5d}  server p50 {s.get('p50', 0):6.1f}  p95 {s.get('p95', 0):6.1f}  "
              f"p99 {s.get('p99', 0):6.1f} ms   client p50 {c.get('p50', 0):6.1f}  p95 {c.get('p95', 0):6.1f} ms")
    print("database:", json.dumps(results["database"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    db = results["database"]
    ok = db["labels"] == submitted and not db["duplicate_task_annotator"] and not db["tasks_over_overlap"] \
        and not db["label_count_drift"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
