"""A project with ``n`` of everything, made cheaply (bulk_create), for tests that a page's or an
API list's number of queries does not grow with the data it lists.

Every collection a page can list has ``n`` rows: runs (of each kind), tags, datasets, policies,
rubrics (two versions each), comparison tasks (two candidates, a label by each of ``n``
annotators, criterion scores, assignments), reward models, pair sets, members, API tokens; the
project's first run (``big.run``) has ``n`` trajectories, checkpoints, metric keys, artifacts and
held-out answers, and the first three runs ``n`` metric keys. Rows are stored directly, so a test pays for one INSERT per model, not per row.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.utils import timezone

from tests.factories import PASSWORD
from webapp.accounts.services import api_token_create
from webapp.datasets.models import Prompt, PromptDataset
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import (
    Checkpoint,
    HeldOutAnswer,
    PolicyModel,
    Run,
    RunArtifact,
    RunKind,
    RunStatus,
    RunTag,
    Trajectory,
)
from webapp.feedback.models import (
    Assignment,
    Candidate,
    ComparisonTask,
    Criterion,
    CriterionScore,
    PreferenceLabel,
    Rubric,
    RubricVersion,
)
from webapp.projects.models import Membership, Project, Role
from webapp.rewards.models import PreferencePairSet, RewardModel

KINDS = [RunKind.POLICY, RunKind.REWARD_MODEL, RunKind.DPO, RunKind.EVALUATION]


@dataclass
class BigProject:
    project: Project
    owner: object
    researcher: object
    annotator: object
    run: Run
    dataset: PromptDataset
    rubric: Rubric
    task: ComparisonTask
    label: PreferenceLabel
    policy: PolicyModel
    reward_model: RewardModel
    pair_set: PreferencePairSet
    checkpoint: Checkpoint
    trajectory: Trajectory
    token: str
    compared: list[int]  # two other runs, to compare with ``run``


def _users(prefix: str, n: int) -> list:
    password = make_password(PASSWORD)
    return get_user_model().objects.bulk_create(
        [
            get_user_model()(username=f"{prefix}-{i}", password=password)
            for i in range(n)
        ]
    )


def big_project(n: int, *, prefix: str = "big") -> BigProject:
    """A project with ``n`` of each thing its pages and API lists show (see the module's docstring)."""
    project = Project.objects.create(name=f"{prefix} project", slug=f"{prefix}-project")
    owner, researcher, *annotators = _users(prefix, n + 2)
    Membership.objects.bulk_create(
        [
            Membership(project=project, user=owner, role=Role.OWNER),
            Membership(project=project, user=researcher, role=Role.RESEARCHER),
        ]
        + [Membership(project=project, user=a, role=Role.ANNOTATOR) for a in annotators]
    )
    _, token = api_token_create(user=owner, name="big")

    datasets = PromptDataset.objects.bulk_create(
        [
            PromptDataset(project=project, name=f"dataset {i}", created_by=owner)
            for i in range(n)
        ]
    )
    dataset = datasets[0]
    Prompt.objects.bulk_create(
        [
            Prompt(dataset=d, index=i, text=f"What is {i} + {i}?", reference=str(2 * i))
            for d in datasets
            for i in range(n)
        ]
    )
    prompts = list(dataset.prompts.order_by("index"))

    runs = Run.objects.bulk_create(
        [
            Run(
                project=project,
                name=f"run {i}",
                kind=KINDS[i % len(KINDS)],
                dataset=dataset,
                created_by=owner,
                status=RunStatus.SUCCEEDED,
                progress=1.0,
                current_step=n,
                total_steps=n,
                config={"train": {"total_steps": n}},
                eval_dataset=dataset if i == 0 else None,
            )
            for i in range(n)
        ]
    )
    run = runs[0]
    RunTag.objects.bulk_create(
        [RunTag(run=r, name=f"tag{i % 3}") for i, r in enumerate(runs)]
    )
    checkpoints = Checkpoint.objects.bulk_create(
        [
            Checkpoint(run=r, step=s, path=f"/nowhere/run-{r.pk}/step-{s}")
            for r in runs[:2]
            for s in range(n)
        ]
    )
    policies = PolicyModel.objects.bulk_create(
        [
            PolicyModel(
                project=project,
                name=f"policy {i}",
                source=PolicyModel.Source.CHECKPOINT,
                reference=c.path,
                checkpoint=c,
                created_by=owner,
            )
            for i, c in enumerate(checkpoints[:n])
        ]
    )
    Run.objects.filter(pk__in=[r.pk for r in runs]).update(policy=policies[0])
    trajectories = Trajectory.objects.bulk_create(
        [
            Trajectory(
                run=r,
                step=s,
                group_index=0,
                sample_index=0,
                prompt=prompts[s % n],
                prompt_text=prompts[s % n].text,
                completion=f"answer {s}",
                rewards={"exact_answer": s % 2},
                reward=float(s % 2),
                length=3,
                finish_reason="stop",
            )
            for r in runs[:2]
            for s in range(n)
        ]
    )
    for r in runs[:3]:
        metric_points_upsert(
            run_id=r.pk,
            points=[
                {"key": f"metric/{k}", "step": s, "value": float(s)}
                for k in range(n)
                for s in range(3)
            ]
            + [{"key": "reward", "step": s, "value": s / n} for s in range(n)],
        )
    RunArtifact.objects.bulk_create(
        [
            RunArtifact(
                run=run,
                path=f"eval/{i}.json",
                file_name=f"{i:064x}"[:64],
                size_bytes=2,
                sha256="0" * 64,
                created_by=owner,
            )
            for i in range(n)
        ]
    )
    HeldOutAnswer.objects.bulk_create(
        [
            HeldOutAnswer(
                run=run,
                step=s,
                prompt=p,
                completion=f"held {p.index}",
                correct=p.index % 2 == 0,
                samples_correct=1,
                samples=2,
                length=2,
            )
            for s in (1, 2)
            for p in prompts
        ]
    )

    rubrics = Rubric.objects.bulk_create(
        [Rubric(project=project, name=f"rubric {i}") for i in range(n)]
    )
    versions = RubricVersion.objects.bulk_create(
        [
            RubricVersion(rubric=r, number=v, created_by=owner)
            for r in rubrics
            for v in (1, 2)
        ]
    )
    criteria = Criterion.objects.bulk_create(
        [
            Criterion(
                version=v,
                position=p,
                name=f"criterion {p}",
                scale=Criterion.Scale.LIKERT_5,
            )
            for v in versions
            for p in range(2)
        ]
    )
    version = versions[1]
    tasks = ComparisonTask.objects.bulk_create(
        [
            ComparisonTask(
                project=project,
                source_run=runs[i % 2],
                source_run_name=runs[i % 2].name,
                prompt_text=f"prompt {i}",
                rubric_version=version,
                required_labels=n,
                label_count=n,
            )
            for i in range(n)
        ]
    )
    candidates = Candidate.objects.bulk_create(
        [
            Candidate(
                task=t,
                position=p,
                text=f"candidate {t.pk}.{p}",
                trajectory=trajectories[p],
                metadata={"run": runs[0].pk},
            )
            for t in tasks
            for p in range(2)
        ]
    )
    labels = PreferenceLabel.objects.bulk_create(
        [
            PreferenceLabel(
                task=t,
                annotator=a,
                ranking=[[j % 2], [1 - j % 2]],
                rubric_version=version,
                time_spent_ms=1000 + j,
                submission_key=f"{prefix}-{t.pk}-{a.pk}",
                strength=1 + j % 3,
            )
            for t in tasks
            for j, a in enumerate(annotators)
        ]
    )
    version_criteria = [c for c in criteria if c.version_id == version.pk]
    by_task = {}
    for c in candidates:
        by_task.setdefault(c.task_id, []).append(c)
    CriterionScore.objects.bulk_create(
        [
            CriterionScore(label=label, candidate=c, criterion=crit, value=3)
            for label in labels
            for c in by_task[label.task_id]
            for crit in version_criteria
        ]
    )
    now = timezone.now()
    Assignment.objects.bulk_create(
        [
            Assignment(
                task=t,
                annotator=a,
                status=Assignment.Status.COMPLETED,
                expires_at=now + timedelta(hours=1),
                closed_at=now,
            )
            for t in tasks
            for a in annotators
        ]
    )

    trained_by = [r for r in runs if r.kind == RunKind.REWARD_MODEL]
    reward_models = RewardModel.objects.bulk_create(
        [
            RewardModel(
                project=project,
                name=f"reward model {i}",
                training_run=trained_by[i] if i < len(trained_by) else None,
                backbone=RewardModel.Backbone.TINY,
                path=f"/nowhere/rm-{i}",
                metrics={"eval/accuracy": 0.5},
            )
            for i in range(n)
        ]
    )
    pair_sets = PreferencePairSet.objects.bulk_create(
        [
            PreferencePairSet(
                project=project,
                name=f"pairs {i}",
                created_by=owner,
                pair_count=n,
                pairs=[
                    {"prompt": f"p{j}", "chosen": "a", "rejected": "b"}
                    for j in range(n)
                ],
            )
            for i in range(n)
        ]
    )
    return BigProject(
        project=project,
        owner=owner,
        researcher=researcher,
        annotator=annotators[0],
        run=run,
        dataset=dataset,
        rubric=rubrics[0],
        task=tasks[0],
        label=labels[0],
        policy=policies[0],
        reward_model=reward_models[0],
        pair_set=pair_sets[0],
        checkpoint=checkpoints[0],
        trajectory=trajectories[0],
        token=token,
        compared=[runs[1].pk, runs[2].pk],
    )
