"""Benchmark: the Quality page and ``GET /api/v1/projects/<id>/quality/`` on a big project.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/steer_wt8 \\
        .venv/bin/python bench/quality_page.py [--tasks 10000 --overlap 3 --annotators 8 --repeat 10 --profile]

Seeds once (a project named ``quality-bench`` is reused if the database has it; ``--reseed``
drops it first): T comparison tasks, half pairwise and half rankings of three candidates, 5 %
of them gold, each labelled by ``--overlap`` of the annotators (30,000 labels by default),
noisy around a hidden order so the figures are neither 0 nor 1; a two-criterion rubric
(likert5 and binary) scored on every candidate of every label; half the tasks made from a run,
their candidates carrying rewards; a tenth of the labels without a time, 1 % rejected.
Times both routes in process through Django's test client (full middleware, template or
serializer included, no network), prints p50/min per route and a digest of the figures (to
compare before and after a change), and with ``--profile`` the top of a cProfile of each.
Not a test: run by hand.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import django

django.setup()

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from webapp.accounts.services import api_token_create
from webapp.experiments.models import Run, RunKind, RunStatus
from webapp.feedback.models import (
    Candidate,
    ComparisonTask,
    Criterion,
    CriterionScore,
    PreferenceLabel,
    Rubric,
    RubricVersion,
)
from webapp.feedback.selectors import quality_report
from webapp.projects.models import Membership, Project, Role

SLUG = "quality-bench"


def noisy_ranking(rng: random.Random, k: int) -> list[list[int]]:
    """A ranking of k candidates around the hidden order 0 < 1 < ... (0 best), with ties."""
    if k == 2:
        return rng.choices([[[0], [1]], [[1], [0]], [[0, 1]]], weights=[6, 3, 1])[0]
    noisy = sorted(range(k), key=lambda p: p + rng.gauss(0, 1.2))
    ranking = [[noisy[0]]]
    for p in noisy[1:]:
        if rng.random() < 0.1:
            ranking[-1] = sorted(ranking[-1] + [p])
        else:
            ranking.append([p])
    return ranking


@transaction.atomic
def seed(*, tasks: int, overlap: int, annotators: int) -> Project:
    rng = random.Random(8)
    project = Project.objects.create(name="quality bench", slug=SLUG)
    User = get_user_model()
    password = make_password("bench-password-1")
    users = User.objects.bulk_create(
        [User(username=f"qb-{i}", password=password) for i in range(annotators + 1)]
    )
    owner, people = users[0], users[1:]
    Membership.objects.bulk_create(
        [Membership(project=project, user=owner, role=Role.OWNER)]
        + [Membership(project=project, user=u, role=Role.ANNOTATOR) for u in people]
    )
    run = Run.objects.create(
        project=project,
        name="bench run",
        kind=RunKind.POLICY,
        created_by=owner,
        status=RunStatus.SUCCEEDED,
        config={},
    )
    rubric = Rubric.objects.create(project=project, name="quality")
    version = RubricVersion.objects.create(rubric=rubric, number=1, created_by=owner)
    criteria = Criterion.objects.bulk_create(
        [
            Criterion(
                version=version,
                position=0,
                name="Correct",
                scale=Criterion.Scale.BINARY,
            ),
            Criterion(
                version=version,
                position=1,
                name="Clear",
                scale=Criterion.Scale.LIKERT_5,
            ),
        ]
    )
    sizes = [2 if i % 2 == 0 else 3 for i in range(tasks)]
    made = ComparisonTask.objects.bulk_create(
        [
            ComparisonTask(
                project=project,
                prompt_text=f"prompt {i}",
                rubric_version=version,
                required_labels=overlap,
                label_count=overlap,
                is_gold=i % 20 == 0,
                gold_ranking=[[p] for p in range(sizes[i])] if i % 20 == 0 else None,
                source_run=run if i % 4 < 2 else None,
                source_run_name=run.name if i % 4 < 2 else "",
            )
            for i in range(tasks)
        ]
    )
    candidates = Candidate.objects.bulk_create(
        [
            Candidate(
                task=t,
                position=p,
                text=f"answer {t.pk}.{p}",
                metadata=(
                    {
                        "run": run.pk,
                        "reward": float(rng.random() < 0.6 - 0.2 * p),
                        "rewards": {
                            "exact": float(rng.random() < 0.5),
                            "format": round(rng.random(), 2),
                        },
                    }
                    if t.source_run_id
                    else {}
                ),
            )
            for t, k in zip(made, sizes, strict=True)
            for p in range(k)
        ]
    )
    by_task: dict[int, list[Candidate]] = {}
    for c in candidates:
        by_task.setdefault(c.task_id, []).append(c)
    now = timezone.now()
    labels = PreferenceLabel.objects.bulk_create(
        [
            PreferenceLabel(
                task=t,
                annotator=a,
                ranking=noisy_ranking(rng, k),
                rubric_version=version,
                time_spent_ms=None
                if rng.random() < 0.1
                else rng.randint(5_000, 90_000),
                submission_key=f"qb-{t.pk}-{a.pk}",
                rejected_at=now if rng.random() < 0.01 else None,
            )
            for t, k in zip(made, sizes, strict=True)
            for a in rng.sample(people, overlap)
        ]
    )
    CriterionScore.objects.bulk_create(
        [
            CriterionScore(
                label=label,
                candidate=c,
                criterion=crit,
                value=(
                    float(rng.random() < 0.7)
                    if crit.scale == Criterion.Scale.BINARY
                    else float(min(5, max(1, round(4 - c.position + rng.gauss(0, 1)))))
                ),
            )
            for label in labels
            for c in by_task[label.task_id]
            for crit in criteria
        ],
        batch_size=20_000,
    )
    return project


def timed(call, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = call()
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    return times


def digest(project) -> str:
    """A hash of every figure of the report, to check a change kept them all."""
    report = quality_report(project=project)
    text = repr(sorted((k, repr(v)) for k, v in report.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    if args.reseed:
        project = Project.objects.filter(slug=SLUG).first()
        if project:
            PreferenceLabel.objects.filter(task__project=project).delete()
            project.delete()
        get_user_model().objects.filter(username__startswith="qb-").delete()
    project = Project.objects.filter(slug=SLUG).first()
    if project is None:
        start = time.perf_counter()
        project = seed(
            tasks=args.tasks, overlap=args.overlap, annotators=args.annotators
        )
        print(f"seeded in {time.perf_counter() - start:.1f} s")
    with (
        connection.cursor() as cursor
    ):  # as autovacuum would: without statistics the planner nests loops
        cursor.execute("ANALYZE")
    owner = Membership.objects.get(project=project, role=Role.OWNER).user
    print(
        f"{ComparisonTask.objects.filter(project=project).count():,} tasks, "
        f"{PreferenceLabel.objects.filter(task__project=project).count():,} labels, "
        f"{CriterionScore.objects.filter(label__task__project=project).count():,} criterion scores, "
        f"{Membership.objects.filter(project=project, role=Role.ANNOTATOR).count()} annotators"
    )

    page = Client(SERVER_NAME="localhost")
    page.force_login(owner)
    _, token = api_token_create(user=owner, name=f"bench {time.time()}")
    api = Client(SERVER_NAME="localhost", headers={"Authorization": f"Bearer {token}"})
    routes = {
        "page": lambda: page.get(reverse("feedback:quality", args=[project.pk])),
        "api": lambda: api.get(f"/api/v1/projects/{project.pk}/quality/"),
    }
    for call in routes.values():  # warm: connections, template loading, URL resolving
        call()
    for name, call in routes.items():
        times = timed(call, args.repeat)
        print(
            f"{name:5} n={args.repeat}  p50={statistics.median(times):7.1f} ms  min={min(times):7.1f} ms"
        )
    print(f"report digest {digest(project)}")
    if args.profile:
        for name, call in routes.items():
            profiler = cProfile.Profile()
            profiler.runcall(call)
            print(f"\n---- {name}")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
