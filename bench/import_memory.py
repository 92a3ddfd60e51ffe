"""Benchmark: peak memory and time of a prompt-dataset import (``dataset_import``), as the
browser's and the API's upload reaches it.

    .venv/bin/python bench/import_memory.py [--rows 200000 --prompt-bytes 1000 \\
        --format jsonl --db steer_import_bench --repeat 1]

Writes a synthetic JSONL (or CSV) file of N rows (a prompt of about ``--prompt-bytes``
characters, a short reference and a little metadata each) to a temporary folder, makes a fresh
database on the local PostgreSQL (127.0.0.1:5432, dropped and created again), migrates it
with ``manage.py migrate`` in a subprocess, then runs each import in a fresh child process:
the file is opened from disk as an upload is (Django keeps a large upload in a temporary
file), checked by ``upload_text`` (the form's and the API's UTF-8 check) and imported by
``webapp.datasets.services.dataset_import`` (``--format pairs``: a file of preference pairs, the
prompt text split into chosen and rejected, by ``webapp.rewards.services.pair_set_import``). The child reports its peak RSS
(``resource.getrusage``, ru_maxrss) before and after the import, the wall time and the rows
stored. See bench/import_memory.md. Not a test: run by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG = "postgres://postgres@127.0.0.1:5432"


def fresh_database(name: str) -> None:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def write_file(path: Path, rows: int, prompt_bytes: int, fmt: str) -> None:
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "sigma"]
    with path.open("w", encoding="utf-8", newline="") as out:
        if fmt == "csv":
            import csv  # noqa: PLC0415

            writer = csv.writer(out)
            writer.writerow(["prompt", "answer", "source"])
        for i in range(rows):
            text = f"Problem {i}: " + " ".join(rng.choice(words) for _ in range(prompt_bytes // 6))
            text = text[:prompt_bytes]
            if fmt == "csv":
                writer.writerow([text, str(i % 97), "bench"])
            elif fmt == "pairs":
                out.write(json.dumps({"prompt": f"Question {i}?", "chosen": text[: prompt_bytes // 2],
                                      "rejected": text[prompt_bytes // 2:], "margin": (i % 5) / 2}) + "\n")
            else:
                out.write(json.dumps({"prompt": text, "answer": str(i % 97),
                                      "metadata": {"source": "bench", "i": i}}) + "\n")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(path: str, fmt: str, name: str) -> None:
    """One import in this process; prints a JSON line of what it measured."""
    sys.path.insert(0, str(ROOT))
    import django  # noqa: PLC0415

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    django.setup()
    from django.core.files import File  # noqa: PLC0415

    from webapp.core.uploads import upload_text  # noqa: PLC0415
    from webapp.datasets.models import Prompt, PromptDataset  # noqa: PLC0415
    from webapp.datasets.services import dataset_import  # noqa: PLC0415
    from webapp.projects.models import Project  # noqa: PLC0415
    from webapp.rewards.models import PreferencePairSet  # noqa: PLC0415
    from webapp.rewards.services import pair_set_import  # noqa: PLC0415

    project, _ = Project.objects.get_or_create(slug="bench-import", defaults={"name": "Bench import"})
    PromptDataset.objects.filter(project=project, name=name).delete()
    PreferencePairSet.objects.filter(project=project, name=name).delete()
    before = peak_mib()
    started = time.perf_counter()
    with open(path, "rb") as handle:
        upload = File(handle, name=f"bench.{fmt}")
        text = upload_text(upload)
        checked = time.perf_counter()
        if fmt == "pairs":
            pair_set = pair_set_import(project=project, name=name, content=text)
        else:
            dataset = dataset_import(project=project, name=name, filename=f"bench.{fmt}", content=text)
    done = time.perf_counter()
    after = peak_mib()
    if fmt == "pairs":
        stored = PreferencePairSet.objects.filter(pk=pair_set.pk).values_list("pair_count", flat=True).get()
    else:
        stored = Prompt.objects.filter(dataset=dataset).count()
    print(json.dumps({"peak_rss_before_mib": round(before, 1), "peak_rss_after_mib": round(after, 1),
                      "import_peak_growth_mib": round(after - before, 1), "upload_check_s": round(checked - started, 2),
                      "import_s": round(done - checked, 2), "total_s": round(done - started, 2), "stored": stored}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--prompt-bytes", type=int, default=1000)
    parser.add_argument("--format", choices=["jsonl", "csv", "pairs"], default="jsonl",
                        help="pairs: a JSONL file of preference pairs for pair_set_import (at most 100,000)")
    parser.add_argument("--db", default="steer_import_bench")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep-db", action="store_true", help="reuse the database as it is (already migrated)")
    parser.add_argument("--child", nargs=3, metavar=("PATH", "FORMAT", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    env = {**os.environ, "DATABASE_URL": f"{PG}/{args.db}", "DJANGO_SETTINGS_MODULE": "webapp.settings"}
    if not args.keep_db:
        fresh_database(args.db)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"bench.{args.format}"
        write_file(path, args.rows, args.prompt_bytes, args.format)
        print(f"file: {args.rows} rows, {path.stat().st_size / 2**20:.1f} MiB ({args.format})", flush=True)
        for i in range(args.repeat):
            out = subprocess.run([sys.executable, __file__, "--child", str(path), args.format, f"bench {i}"],
                                 cwd=ROOT, env=env, check=False, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"the import failed:\n{out.stderr}")
            print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
