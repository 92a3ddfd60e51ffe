"""Benchmark: metric ingest and sampled history over REST, Steer against MLflow, side by side.

    .venv/bin/python bench/metric_ingest.py [--runs 4 --metrics 10 --steps 2500 --batch 1000 \\
        --clients 4 --workers 2 --queries 100]

Both servers run on this machine against the same PostgreSQL (127.0.0.1:5432), each in a
fresh database: Steer (gunicorn, ``webapp.wsgi``) on ``steer_bench_h6``, MLflow's tracking
server on ``mlflow_bench`` (MLflow lives in its own venv, see bench/metric_ingest.md; pass
``--mlflow /path/to/mlflow``). Each gets the same number of server workers and the same
client threads, and ingests the same points: N runs × M metrics × K steps in batches of at
most 1,000 points (MLflow's own limit for ``runs/log-batch``). Then each answers the same
sampled-history queries (one run, one key, ≤ 500 points). Prints points/s, p50/p95
latencies and the ratio, and checks the row counts in both databases.
Not a test: run by hand on the real stack.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
PG = "postgres://postgres@127.0.0.1:5432"
STEER_DB = "steer_bench_h6"
MLFLOW_DB = "mlflow_bench"


# ------------------------------------------------------------------ setup

def fresh_database(name: str) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, proc, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server for {url} exited with {proc.returncode}; see its log")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server at {url} did not come up in {timeout:.0f} s")


@contextmanager
def server(cmd: list[str], env: dict, health_url: str, log: Path):
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_up(health_url, proc)
            yield proc
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def steer_env(var_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"CELERY_BROKER_URL"}}
    env.update(DATABASE_URL=f"{PG}/{STEER_DB}", STEER_VAR_DIR=str(var_dir), DEBUG="0",
               DJANGO_SETTINGS_MODULE="webapp.settings", SECRET_KEY="bench-only-not-secret")
    return env


def steer_prepare(env: dict) -> str:
    """Migrate the fresh database and make a user, project and API token; returns 'project_id token'."""
    script = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n"
        "from tests.factories import make_user\n"
        "from webapp.projects.services import project_create\n"
        "from webapp.accounts.services import api_token_create\n"
        "user = make_user('bench')\n"
        "project = project_create(name='bench', owner=user)\n"
        "print(project.id, api_token_create(user=user, name='bench')[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


# ------------------------------------------------------------------ CPU accounting (Linux /proc)

TICK = os.sysconf("SC_CLK_TCK")


def _proc_stats():
    """(pid, comm, pgid, user+system seconds) of every process we may read."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        yield int(entry.name), comm, int(fields[2]), (int(fields[11]) + int(fields[12])) / TICK


def cpu_seconds(server_pgid: int) -> dict[str, float]:
    """CPU used so far by PostgreSQL's processes, by one server's process group, and by this client."""
    db = server = 0.0
    for _, comm, pgid, seconds in _proc_stats():
        if comm.startswith("postgres"):
            db += seconds
        elif pgid == server_pgid:
            server += seconds
    return {"db": db, "server": server, "client": time.process_time()}


# ------------------------------------------------------------------ workload

def batches_for(runs: list, metrics: int, steps: int, batch: int):
    """(run, [(key, step, value), ...]) in step order, each batch within one run."""
    rng = random.Random(0)
    keys = [f"metric_{m:02d}" for m in range(metrics)]
    out = []
    for run in runs:
        pending = []
        for step in range(steps):
            for key in keys:
                pending.append((key, step, rng.random()))
                if len(pending) == batch:
                    out.append((run, pending))
                    pending = []
        if pending:
            out.append((run, pending))
    rng.shuffle(out)  # runs interleave, as several trainers reporting at once
    return out


def timed_parallel(jobs, send, clients: int) -> tuple[float, list[float]]:
    sessions = {}

    def one(job):
        import threading

        session = sessions.setdefault(threading.get_ident(), requests.Session())
        t0 = time.perf_counter()
        send(session, job)
        return time.perf_counter() - t0

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(one, jobs))
    return time.perf_counter() - start, latencies


def check(response: requests.Response) -> requests.Response:
    if response.status_code >= 300:
        raise SystemExit(f"{response.request.method} {response.url} -> {response.status_code}: {response.text[:500]}")
    return response


# ------------------------------------------------------------------ the two systems

class Steer:
    name = "Steer"

    def __init__(self, base: str, project_id: int, token: str):
        self.base, self.project_id = base, project_id
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def create_runs(self, n: int) -> list[int]:
        return [check(requests.post(f"{self.base}/api/v1/projects/{self.project_id}/runs/", headers=self.headers,
                                    data=json.dumps({"name": f"bench-{i}", "kind": "external",
                                                     "config": {"trainer": "bench"}}))).json()["id"]
                for i in range(n)]

    def send(self, session, job) -> None:
        run_id, points = job
        body = json.dumps({"points": points})
        check(session.post(f"{self.base}/api/v1/runs/{run_id}/metrics/", data=body, headers=self.headers))

    def history(self, session, run_id, key, max_points) -> int:
        response = check(session.get(f"{self.base}/api/v1/metrics/history/", headers=self.headers,
                                     params={"run": run_id, "key": key, "max_points": max_points}))
        return len(response.json()["results"][0]["steps"])

    @staticmethod
    def stored() -> int:
        with psycopg.connect(f"{PG}/{STEER_DB}") as conn:
            return conn.execute("SELECT count(*) FROM experiments_metricpoint").fetchone()[0]


class MLflow:
    name = "MLflow"

    def __init__(self, base: str):
        self.base = base

    def create_runs(self, n: int) -> list[str]:
        experiment = check(requests.post(f"{self.base}/api/2.0/mlflow/experiments/create",
                                         json={"name": f"bench-{time.time_ns()}"})).json()["experiment_id"]
        return [check(requests.post(f"{self.base}/api/2.0/mlflow/runs/create",
                                    json={"experiment_id": experiment, "run_name": f"bench-{i}",
                                          "start_time": int(time.time() * 1000)})).json()["run"]["info"]["run_id"]
                for i in range(n)]

    def send(self, session, job) -> None:
        run_id, points = job
        now = int(time.time() * 1000)
        body = {"run_id": run_id,
                "metrics": [{"key": k, "value": v, "timestamp": now, "step": s} for k, s, v in points]}
        check(session.post(f"{self.base}/api/2.0/mlflow/runs/log-batch", json=body))

    def history(self, session, run_id, key, max_points) -> int:
        # The sampled history MLflow's own UI asks for (a fixed number of points over the steps).
        response = check(session.get(f"{self.base}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                                     params={"run_ids": run_id, "metric_key": key, "max_results": max_points}))
        return len(response.json().get("metrics", []))

    @staticmethod
    def stored() -> int:
        with psycopg.connect(f"{PG}/{MLFLOW_DB}") as conn:
            return conn.execute("SELECT count(*) FROM metrics").fetchone()[0]


def ingest_round(system, args) -> dict:
    runs = system.create_runs(args.runs)
    jobs = batches_for(runs, args.metrics, args.steps, args.batch)
    before = cpu_seconds(system.pgid)
    wall, latencies = timed_parallel(jobs, system.send, args.clients)
    after = cpu_seconds(system.pgid)
    cpu = {k: after[k] - before[k] for k in before}
    return {"runs": runs, "points": sum(len(p) for _, p in jobs), "wall": wall, "latencies": latencies,
            "batches": len(jobs), "cpu": cpu}


def history_queries(system, runs: list, args) -> list[float]:
    rng = random.Random(1)
    queries = [(rng.choice(runs), f"metric_{rng.randrange(args.metrics):02d}") for _ in range(args.queries)]
    sizes = []
    _, latencies = timed_parallel(queries, lambda s, q: sizes.append(system.history(s, q[0], q[1], args.max_points)), 1)
    return latencies, max(sizes)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def summary(system, rounds: list[dict], history: tuple) -> dict:
    latencies = [t for r in rounds for t in r["latencies"]]
    points, wall = sum(r["points"] for r in rounds), sum(r["wall"] for r in rounds)
    q_latencies, q_points = history
    batches = sum(r["batches"] for r in rounds)
    cpu_ms = {k: 1000 * sum(r["cpu"][k] for r in rounds) / batches for k in ("db", "server", "client")}
    return {
        "cpu_ms_per_batch": cpu_ms,
        "system": system.name, "points": points, "stored": system.stored(), "requests": len(latencies),
        "ingest_s": wall, "points_per_s": points / wall,
        "rounds_points_per_s": [r["points"] / r["wall"] for r in rounds],
        "ingest_p50_ms": 1000 * statistics.median(latencies), "ingest_p95_ms": 1000 * p95(latencies),
        "history_points": q_points, "history_p50_ms": 1000 * statistics.median(q_latencies),
        "history_p95_ms": 1000 * p95(q_latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes, for each system")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per Steer worker (as deployed)")
    parser.add_argument("--warmup-steps", type=int, default=200, help="a first round per system, not counted")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--max-points", type=int, default=500)
    parser.add_argument("--mlflow", default="/tmp/mlflow-venv/bin/mlflow")
    parser.add_argument("--rounds", type=int, default=3, help="ingest rounds per system, interleaved")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    assert args.batch <= 1000, "MLflow's log-batch takes at most 1,000 metrics"

    logs = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    if not shutil.which(args.mlflow) and not Path(args.mlflow).exists():
        raise SystemExit(f"no MLflow at {args.mlflow}; see bench/metric_ingest.md for the install")
    fresh_database(STEER_DB)
    fresh_database(MLFLOW_DB)
    env = steer_env(logs / "steer-var")
    project_id, token = steer_prepare(env).split()
    steer_port, mlflow_port = free_port(), free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    # Steer served as `manage.py serve` and docker-compose serve it: gunicorn, threads per worker.
    steer_cmd = [gunicorn, "webapp.wsgi", "--bind", f"127.0.0.1:{steer_port}", "--workers", str(args.workers),
                 "--threads", str(args.threads), "--chdir", str(ROOT), "--log-level", "warning"]
    mlflow_cmd = [args.mlflow, "server", "--backend-store-uri",
                  f"postgresql://postgres@127.0.0.1:5432/{MLFLOW_DB}", "--host", "127.0.0.1",
                  "--port", str(mlflow_port), "--workers", str(args.workers),
                  "--default-artifact-root", str(logs / "mlruns")]
    with server(steer_cmd, env, f"http://127.0.0.1:{steer_port}/healthz", logs / "steer.log") as steer_proc, \
            server(mlflow_cmd, dict(os.environ), f"http://127.0.0.1:{mlflow_port}/health", logs / "mlflow.log") as mlflow_proc:
        systems = [Steer(f"http://127.0.0.1:{steer_port}", int(project_id), token),
                   MLflow(f"http://127.0.0.1:{mlflow_port}")]
        systems[0].pgid, systems[1].pgid = steer_proc.pid, mlflow_proc.pid  # each server leads its own session
        rounds = {s.name: [] for s in systems}
        warmup = argparse.Namespace(**{**vars(args), "runs": 1, "steps": args.warmup_steps})
        warmed = {}
        for system in systems:  # first requests pay for imports, connection pools, caches
            warmed[system.name] = ingest_round(system, warmup)["points"]
        # Rounds alternate which system goes first, so a change in the machine's background
        # load falls on both alike; each round adds fresh runs.
        for i in range(args.rounds):
            for system in systems if i % 2 == 0 else systems[::-1]:
                rounds[system.name].append(ingest_round(system, args))
                print(f"round {i + 1} {system.name}: {rounds[system.name][-1]['points'] / rounds[system.name][-1]['wall']:,.0f} points/s",
                      flush=True)
        results = []
        for system in systems:
            runs = [run for r in rounds[system.name] for run in r["runs"]]
            results.append(summary(system, rounds[system.name], history_queries(system, runs, args)))
            results[-1]["stored"] -= warmed[system.name]  # the warm-up's points are in the database too

    print(f"\n{args.runs} runs × {args.metrics} metrics × {args.steps} steps, batches of {args.batch}, "
          f"{args.clients} client threads, {args.workers} server workers each (Steer: {args.threads} threads per worker); "
          f"logs in {logs}\n")
    header = ("system", "points", "stored", "points/s", "ingest p50 ms", "ingest p95 ms",
              "history pts", "history p50 ms", "history p95 ms", "CPU ms/batch: db / server / client")
    print(" | ".join(header))
    for r in results:
        print(" | ".join([r["system"], str(r["points"]), str(r["stored"]), f"{r['points_per_s']:,.0f}",
                          f"{r['ingest_p50_ms']:.1f}", f"{r['ingest_p95_ms']:.1f}", str(r["history_points"]),
                          f"{r['history_p50_ms']:.1f}", f"{r['history_p95_ms']:.1f}",
                          " / ".join(f"{r['cpu_ms_per_batch'][k]:.1f}" for k in ("db", "server", "client"))]))
    if len(results) == 2:
        steer, mlflow = results
        print(f"\ningest throughput ratio Steer/MLflow: {steer['points_per_s'] / mlflow['points_per_s']:.1f}× "
              f"(per round: {', '.join(f'{a / b:.1f}×' for a, b in zip(steer['rounds_points_per_s'], mlflow['rounds_points_per_s']))})")
        print(f"history p95 ratio MLflow/Steer: {mlflow['history_p95_ms'] / steer['history_p95_ms']:.1f}×")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
