"""Writes on runs: creation and launch, the status state machine, cancel, deletion, execution on a worker."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.core.deletion import first_few
from webapp.core.locks import rows_for_share
from webapp.core.names import name_problem, name_strip
from webapp.datasets.models import PromptDataset
from webapp.experiments.artifacts import run_artifacts_remove
from webapp.experiments.errors import IdempotencyKeyReused, IllegalTransition, QueueUnavailable, RunError
from webapp.experiments.models import MetricChunk, MetricRollup, PolicyModel, Run, RunKind, RunStatus

log = logging.getLogger(__name__)

# The Celery task that executes each kind of run (by name: the web process need not import torch).
RUN_TASKS = {
    RunKind.POLICY: "workers.tasks.run_policy",
    RunKind.EVALUATION: "workers.tasks.run_evaluation",
    RunKind.REWARD_MODEL: "workers.tasks.train_reward_model",
    RunKind.DPO: "workers.tasks.train_dpo",
    RunKind.SFT: "workers.tasks.train_sft",
}
from webapp.experiments.run_config import parse_config_json, validate_config
from webapp.experiments.run_notes import run_notes_update, tags_clean  # noqa: F401 (services' public names)


@transaction.atomic
def run_create(
    *,
    project,
    user,
    name: str,
    kind: str,
    config,
    dataset=None,
    policy=None,
    eval_dataset=None,
    creation_key: str = "",
    creation_digest: str = "",
) -> Run:
    """Validate and store a queued run. Nothing is stored when any input is bad."""
    if kind not in RunKind.values:
        raise RunError(f"unknown kind {kind!r}; choose one of {', '.join(RunKind.values)}", field="kind")
    name = name_strip(name)
    if not name:
        raise RunError("a run needs a name", field="name")
    if problem := name_problem(name):
        raise RunError(f"the name {problem}", field="name")
    if dataset is not None and dataset.project_id != project.id:
        raise RunError("the dataset belongs to another project", field="dataset")
    if policy is not None and policy.project_id != project.id:
        raise RunError("the policy belongs to another project", field="policy")
    if eval_dataset is not None:
        if kind != RunKind.POLICY:
            raise RunError("only a policy run evaluates held-out prompts as it trains", field="eval_dataset")
        if eval_dataset.project_id != project.id:
            raise RunError("the dataset belongs to another project", field="eval_dataset")
    config = validate_config(kind, parse_config_json(config))
    run = Run(project=project, created_by=user, name=name, kind=kind, config=config,
              dataset=dataset, policy=policy, eval_dataset=eval_dataset,
              creation_key=creation_key, creation_digest=creation_digest)
    with transaction.atomic():
        # Held until the run is committed, so that a deletion of a dataset or the policy
        # waits and then sees the run (instead of the run failing its foreign key at commit).
        for field, model, obj in (("dataset", PromptDataset, dataset), ("policy", PolicyModel, policy),
                                  ("eval_dataset", PromptDataset, eval_dataset)):
            if obj is not None and not rows_for_share(model.objects.filter(pk=obj.pk).values_list("pk")):
                what = "held-out dataset" if field == "eval_dataset" else field
                raise RunError(f"the {what} was deleted while this run was being created", field=field)
        run.full_clean()
        run.save()
    return run


def run_transition(*, run_id: int, to: str, **fields) -> Run:
    """Move a run to status `to` under a row lock; IllegalTransition if the machine forbids it.

    Timestamps follow the status: started_at on the first start, finished_at on a terminal one.
    """
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if not run.can_transition(to):
            raise IllegalTransition(f"a {run.status} run cannot become {to}", field="status")
        now = timezone.now()
        run.status = to
        if to == RunStatus.RUNNING and run.started_at is None:
            run.started_at = now
        if run.is_terminal:
            run.finished_at = now
        for name, value in fields.items():
            setattr(run, name, value)
        run.save()
    return run


def run_progress_report(*, run_id: int, **fields) -> Run:
    """An external trainer's report that its running run is still running, with how far it has
    got (``current_step``, ``total_steps``, ``progress``): stored under a row lock, the status
    unchanged. IllegalTransition for a run that is not running (finished, cancelled, or not
    started: its first report of "running" is a transition)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.RUNNING:
            raise IllegalTransition(f"a {run.status} run cannot become {RunStatus.RUNNING}", field="status")
        for name, value in fields.items():
            setattr(run, name, value)
        if fields:
            run.save(update_fields=list(fields))
    return run


def policy_config_merged(*, config: dict, policy) -> dict:
    """The form's config with the chosen policy's engine spec laid over its `policy` section."""
    config = dict(config)
    section = config.get("policy") if isinstance(config.get("policy"), dict) else {}
    config["policy"] = {**section, **policy.engine_spec()}
    return config


def run_launch(*, project, user, name: str, kind: str, config, dataset=None, policy=None, eval_dataset=None,
               creation_key: str = "", creation_digest: str = "") -> Run:
    """Create a queued run and send it to a worker once the transaction commits.

    A policy or evaluation run needs a policy and a dataset; a policy run may name held-out
    prompts, ``eval_dataset``, to evaluate every ``eval.every_steps`` steps (the two go together);
    a reward-model run names its preference data in
    ``config["data"]`` (checked by ``webapp.rewards``), and records as its policy the one whose folder
    its backbone ``path`` is, if any. A DPO run needs a policy and names its preference data (the
    labels, fixed here at the newest, or a pair set) in ``config["data"]``; an SFT run too, or a
    prompt dataset with references, which becomes the run's dataset (kept from deletion as any
    run's). RunError changes nothing and queues nothing.
    """
    from webapp.experiments.local_folders import (
        backbone_policy, judge_policies_lock, resolve_local_folders, reward_models_lock,
    )
    from webapp.experiments.run_config import parse_config_json

    config = parse_config_json(config)
    if kind in (RunKind.POLICY, RunKind.EVALUATION):
        verb = "train" if kind == RunKind.POLICY else "evaluate"
        if policy is None:
            raise RunError(f"choose the policy to {verb}", field="policy")
        if dataset is None:
            raise RunError(f"choose the prompt dataset to {verb} {'on' if kind == RunKind.POLICY else 'it on'}",
                           field="dataset")
    elif kind in (RunKind.DPO, RunKind.SFT):
        if policy is None:
            raise RunError("choose the policy to train", field="policy")
        if dataset is not None or eval_dataset is not None:
            what = ("a DPO run trains on the pair set its config's data names, not on a prompt dataset"
                    if kind == RunKind.DPO else "an SFT run trains on the data its config's data names "
                    '(a prompt dataset as {"source": "dataset", "dataset": <id>})')
            raise RunError(f"{what}; leave it out", field="dataset" if dataset is not None else "eval_dataset")
        if policy.project_id == project.id:  # another project's is refused by run_create, naming nothing of it
            config = policy_config_merged(config=config, policy=policy)
        if kind == RunKind.SFT:
            dataset = _sft_dataset(project=project, config=config)
    elif kind not in RUN_TASKS:
        raise RunError(f"runs of kind {kind!r} are not executed by Steer's workers", field="kind")
    # Models named by id become the engine's own fields first, so the checks below read the
    # config the engine will read.
    config = resolve_local_folders(project=project, kind=kind, config=config)
    if kind in (RunKind.POLICY, RunKind.EVALUATION):
        if dataset.project_id == project.id:  # another project's is refused by run_create, naming nothing of it
            _dataset_check(dataset, config)
        if kind == RunKind.POLICY:
            _held_out_check(eval_dataset, config, project=project, dataset=dataset)
        if policy.project_id == project.id:
            config = policy_config_merged(config=config, policy=policy)
    if kind == RunKind.REWARD_MODEL:
        backbone = backbone_policy(project=project, kind=kind, config=config)
        if policy is not None and policy != backbone:
            raise RunError("a reward-model run's policy is the one whose folder its backbone 'path' names; "
                           "leave it out", field="policy")
        policy = backbone
    from kombu.exceptions import OperationalError

    try:
        with transaction.atomic():
            reward_models_lock(project=project, config=config)
            judge_policies_lock(project=project, config=config)
            run = run_create(project=project, user=user, name=name, kind=kind, config=config,
                             dataset=dataset, policy=policy, eval_dataset=eval_dataset,
                             creation_key=creation_key, creation_digest=creation_digest)
            if kind == RunKind.EVALUATION:  # its steps are known now (a dataset's prompts never change)
                from workers.engine.config import evaluation_steps

                run.total_steps = evaluation_steps(run.dataset.prompts.count(), run.config["rollout"]["prompts_per_step"])
                run.save(update_fields=["total_steps"])
            if kind == RunKind.REWARD_MODEL:
                from webapp.rewards.selectors import preference_source_check

                data = preference_source_check(project=project, data=run.config["data"],
                                               eval_fraction=run.config["eval_fraction"], seed=run.config["seed"])
                if data != run.config["data"]:  # labels fixed at the newest one
                    run.config = {**run.config, "data": data}
                    run.save(update_fields=["config"])
            if kind in (RunKind.DPO, RunKind.SFT):
                from webapp.rewards.selectors import dpo_pairs_check, sft_examples_check

                check = dpo_pairs_check if kind == RunKind.DPO else sft_examples_check
                data = check(project=project, data=run.config["data"])
                if data != run.config["data"]:  # labels fixed at the newest one
                    run.config = {**run.config, "data": data}
                    run.save(update_fields=["config"])
            run_enqueue(run=run)
    except OperationalError as exc:  # raised by the task sent on commit: no worker will ever see this run
        log.error("run %s: the broker refused its task (%s); the run is withdrawn", run.id, exc)
        Run.objects.filter(pk=run.id, status=RunStatus.QUEUED).delete()
        raise QueueUnavailable("the task queue (the broker at CELERY_BROKER_URL) cannot be reached, so the run "
                               "was not launched and nothing was stored; launch it again once the broker is up") from exc
    return run


def _sft_dataset(*, project, config: dict) -> PromptDataset | None:
    """The prompt dataset an SFT run's ``config.data`` names (``{"source": "dataset"}``), of this
    project; RunError on config.data for an id that is none of its datasets (another project's
    included, naming nothing of it). None for the other sources."""
    from webapp.experiments.run_config import sft_data_section

    data = sft_data_section(config.get("data"))
    if data["source"] != "dataset":
        return None
    dataset = PromptDataset.objects.filter(project=project, pk=data["dataset"]).first()
    if dataset is None:
        raise RunError("no such prompt dataset in this project", field="config.data")
    return dataset


IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")


def run_create_once(*, project, user, idempotency_key: str | None, name: str, kind: str, config,
                    dataset=None, policy=None, eval_dataset=None) -> tuple[Run, bool]:
    """Create (an external run) or launch (Steer's kinds) a run: ``(run, True)``. With an
    ``idempotency_key`` (the API's Idempotency-Key header), a request that repeats a key this user
    already created a run with in this project answers that run, ``(run, False)``, and creates
    nothing: a client may retry a creation whose answer it lost. The same key with another body,
    or a key that launched a sweep (``webapp.experiments.sweeps``), raises IdempotencyKeyReused; a
    malformed key RunError. Without a key, every call creates. The key is looked up and the run
    created holding the key's lock (``creation_key_lock``), which a sweep under the key takes too.
    """
    from kombu.exceptions import OperationalError

    from webapp.experiments.sweeps import sweep_launched_under

    idempotency_key_check(idempotency_key)
    create = run_create if kind == RunKind.EXTERNAL else run_launch  # an external run waits for its trainer
    if not idempotency_key:
        return create(project=project, user=user, name=name, kind=kind, config=config, dataset=dataset,
                      policy=policy, eval_dataset=eval_dataset), True
    key = idempotency_key
    digest = creation_digest(name=name, kind=kind, config=config, dataset=dataset, policy=policy,
                             eval_dataset=eval_dataset)
    run = None
    try:
        with transaction.atomic():
            creation_key_lock(project=project, user=user, key=key)
            if earlier := _run_created_with(project=project, user=user, key=key, digest=digest):
                return earlier, False
            if sweep_launched_under(project=project, user=user, submission_key=key):
                raise IdempotencyKeyReused("this Idempotency-Key already launched a sweep; send a new key to create "
                                           "a run, or the sweep's own request to get its runs again",
                                           field="Idempotency-Key")
            run = create(project=project, user=user, name=name, kind=kind, config=config, dataset=dataset,
                         policy=policy, eval_dataset=eval_dataset, creation_key=key, creation_digest=digest)
    except (IntegrityError, ValidationError):  # the same key, sent again while the first request was creating
        if earlier := _run_created_with(project=project, user=user, key=key, digest=digest):
            return earlier, False
        raise
    except OperationalError as exc:  # the launch's task, sent as this transaction committed: run_launch's own
        # withdrawal is for a transaction of its own, which this one is not
        log.error("run %s: the broker refused its task (%s); the run is withdrawn", getattr(run, "id", None), exc)
        Run.objects.filter(pk=getattr(run, "id", None), status=RunStatus.QUEUED).delete()
        raise QueueUnavailable("the task queue (the broker at CELERY_BROKER_URL) cannot be reached, so the run "
                               "was not launched and nothing was stored; launch it again once the broker is up") from exc
    return run, True


# The first of the two keys of the advisory locks ``creation_key_lock`` takes: its own lock space.
CREATION_KEY_LOCK_CLASS = int.from_bytes(hashlib.sha256(b"steer:run-creation-key").digest()[:4], "big", signed=True)


def creation_key_lock(*, project, user, key: str) -> None:
    """Hold, until the current transaction ends, the lock of the creation key ``key`` of ``user`` in
    ``project``: ``run_create_once`` and ``sweeps.sweep_launch`` look up what the key made and
    create under it holding this lock, so two requests under one key, sent at once, go one after
    the other and the second finds what the first made. The unique constraint on the creation key
    alone cannot: a run stores the key itself, a sweep's runs keys derived from it. PostgreSQL's
    transaction-level advisory lock, keyed (project, user, key) in a lock space of its own; SQLite
    needs none, as it runs one writer at a time."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("creation_key_lock outside a transaction would release its lock at once")
    if transaction.get_connection().vendor != "postgresql":
        return
    scope = f"{project.pk}:{getattr(user, 'pk', None)}:{key}".encode()
    lock_id = int.from_bytes(hashlib.sha256(scope).digest()[:4], "big", signed=True)
    with transaction.get_connection().cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [CREATION_KEY_LOCK_CLASS, lock_id])


def idempotency_key_check(idempotency_key: str | None, *, creates: str = "run to create") -> None:
    """RunError on ``Idempotency-Key`` unless the key is None or 8–64 letters, digits or - _ . :;
    the message says the key is made once per ``creates`` (the route's: "sweep to launch")."""
    if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
        raise RunError("the Idempotency-Key header must be 8–64 letters, digits or - _ . : (a UUID, say), "
                       f"made once per {creates}", field="Idempotency-Key")


def creation_digest(*, name: str, kind: str, config, dataset=None, policy=None, eval_dataset=None) -> str:
    """SHA-256 of a creation's inputs, stored with its key to tell a retry from another request."""
    return hashlib.sha256(orjson.dumps({
        "name": name, "kind": kind, "config": config, "dataset": getattr(dataset, "pk", None),
        "policy": getattr(policy, "pk", None), "eval_dataset": getattr(eval_dataset, "pk", None),
    }, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _run_created_with(*, project, user, key: str, digest: str) -> Run | None:
    run = Run.objects.filter(project=project, created_by=user, creation_key=key).first()
    if run is not None and run.creation_digest != digest:
        raise IdempotencyKeyReused(f"this Idempotency-Key already created run {run.pk} (“{run.name}”) from a "
                                   "different request body; send a new key to create another run, or the same "
                                   "body to get that run again", field="Idempotency-Key")
    return run


def _dataset_check(dataset, config: dict) -> None:
    """RunError on ``dataset`` when the worker would refuse it: no prompts, or prompts without
    the reference answer an ``exact_answer`` or ``math_verify`` reward compares with."""
    from workers.engine.rewards import reference_reward

    prompts = dataset.prompts.all()
    if not prompts.exists():
        raise RunError("the dataset has no prompts", field="dataset")
    _blank_prompts_check(dataset, field="dataset")
    rewards = config.get("rewards", [{"name": "exact_answer"}])  # the engine's default
    names = [r.get("name") for r in rewards if isinstance(r, dict)] if isinstance(rewards, list) else []
    needer = reference_reward(names)
    if needer is not None:
        missing = prompts.filter(reference="").count()
        if missing:
            raise RunError(f"{missing} of its prompts have no reference answer, which the {needer} reward "
                           "needs; give every prompt a reference or drop that reward", field="dataset")


def _blank_prompts_check(dataset, *, field: str) -> None:
    """RunError on ``field`` if the dataset holds prompts of whitespace alone, which the worker
    refuses only once the run has started."""
    from webapp.datasets.selectors import blank_prompts

    blank = list(blank_prompts(dataset=dataset).order_by("index").values_list("index", flat=True)[:5])
    if blank:
        total = blank_prompts(dataset=dataset).count()
        shown = first_few([f"#{i}" for i in blank], total)
        raise RunError(f"{total} of its prompts hold only whitespace ({shown}); a run needs text in every "
                       "prompt, so import the dataset again without them", field=field)


def _held_out_check(eval_dataset, config: dict, *, project, dataset) -> None:
    """RunError unless held-out prompts and ``eval.every_steps`` come together, the prompts are
    not the training set, and they are ones the engine's evaluation can score (with its 0/1
    accuracy reward; exact_answer and math_verify need each prompt's reference). A config the
    engine refuses is left to ``run_create`` to report."""
    from workers.engine.config import TrainConfig
    from workers.engine.errors import ConfigError
    from workers.engine.rewards import REFERENCE_REWARDS

    try:
        engine_config = TrainConfig.from_dict(config)
    except ConfigError:
        return
    every = engine_config.eval.every_steps
    if eval_dataset is None:
        if every > 0:
            raise RunError("choose the held-out prompts to evaluate every eval.every_steps steps, or set it to 0",
                           field="eval_dataset")
        return
    if every <= 0:
        raise RunError("set how often to evaluate the held-out prompts: eval.every_steps, at least 1",
                       field="config.eval.every_steps")
    if eval_dataset.project_id != project.id:  # refused by run_create, naming nothing of it
        return
    if eval_dataset == dataset:
        raise RunError("held-out prompts are ones the run does not train on: choose another dataset than "
                       "the training one", field="eval_dataset")
    prompts = eval_dataset.prompts.all()
    if not prompts.exists():
        raise RunError("the dataset has no prompts", field="eval_dataset")
    _blank_prompts_check(eval_dataset, field="eval_dataset")
    scorer = engine_config.held_out_reward.name
    missing = prompts.filter(reference="").count() if scorer in REFERENCE_REWARDS else 0
    if missing:
        how = ("by exact match with their reference (exact_answer) unless the run has another 0/1 reward"
               if scorer == "exact_answer" else f"against their reference by the run's {scorer} reward")
        raise RunError(f"{missing} of its prompts have no reference answer; held-out prompts are scored {how}",
                       field="eval_dataset")


def run_enqueue(*, run: Run) -> None:
    """Send the run's task after the current transaction commits (never before: the worker
    must find the row)."""
    from workers.celery_app import app

    task_name, run_id = RUN_TASKS[run.kind], run.id
    transaction.on_commit(lambda: app.send_task(task_name, args=[run_id]))


def run_cancel(*, run_id: int) -> Run:
    """Cancel a queued run at once; ask a running one to stop (its worker ends it within a step).

    A running run whose worker is lost is cancelled at once too: no worker may be left to end it,
    and one that was only slow finds its lease gone at its next write and stops there.
    """
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.is_terminal:
            raise RunError(f"the run has already {run.status}", field="status")
        if run.status == RunStatus.QUEUED or (run.worker_lost and run.kind != RunKind.EXTERNAL):
            return run_transition(run_id=run.id, to=RunStatus.CANCELLED, cancel_requested=True)
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
    return run


def run_delete_check(*, run: Run) -> None:
    """RunError if the run may not be deleted now: it is still active, a policy starts from one
    of its checkpoints, or a reward model was trained by it."""
    if not run.is_terminal:
        raise RunError(f"the run is {run.status}; cancel it first and delete it once it has stopped",
                       field="status")
    policies = PolicyModel.objects.filter(checkpoint__run=run).order_by("name")
    named = [f"“{name}”" for name in policies.values_list("name", flat=True)[:5]]
    if named:
        total = policies.count()
        raise RunError(f"the polic{'ies' if total != 1 else 'y'} {first_few(named, total)} "
                       f"start{'' if total != 1 else 's'} from this run's checkpoints, which deleting it would "
                       "remove; delete those policies first (on the Policies page)", field="policy")
    from webapp.rewards.models import RewardModel  # noqa: PLC0415 (rewards imports experiments)

    reward_model = RewardModel.objects.filter(training_run=run).first()
    if reward_model is not None:
        raise RunError(f"the reward model “{reward_model.name}” was trained by this run and is stored in its "
                       "folder; delete the reward model first (on the Reward models page, or DELETE "
                       f"/api/v1/reward-models/{reward_model.pk}/?with_training_run=true), which can "
                       "delete this run with it", field="reward_model")


def run_delete(*, run_id: int) -> None:
    """Delete a finished run and what only it holds: trajectories, checkpoint rows, metric chunks
    and rollups, artifacts, and (once the transaction commits) its checkpoint and artifact folders.

    Comparison tasks made from the run keep their prompt, candidates (whose text is their own) and
    labels; only their links to the run and its trajectories are cleared. RunError (see
    ``run_delete_check``) changes nothing; Run.DoesNotExist for a missing run.
    """
    with transaction.atomic():
        # FOR UPDATE waits for metric batches in flight (they hold the row FOR KEY SHARE), and
        # any batch after this finds the run gone.
        run = Run.objects.select_for_update().get(pk=run_id)
        run_delete_check(run=run)
        # Explicit, though the ORM's cascade and the PostgreSQL trigger of migration 0003 remove
        # them too: these tables have no foreign-key constraint to fall back on.
        MetricChunk.objects.filter(run_id=run.pk).delete()
        MetricRollup.objects.filter(run_id=run.pk).delete()
        run.delete()  # cascades to trajectories, checkpoints and artifacts; tasks and candidates are SET_NULL
        transaction.on_commit(lambda: run_folder_remove(run_id=run_id))
        transaction.on_commit(lambda: run_artifacts_remove(run_id=run_id))


def run_folder_remove(*, run_id: int) -> None:
    """Remove ``STEER_CHECKPOINT_DIR/run-<id>``, never anything outside the checkpoint root.

    A symbolic link in the folder's place is unlinked, its target left alone; links inside the
    folder are removed as links (``shutil.rmtree`` does not follow them). Failures are logged:
    the run is already gone from the database.
    """
    root = Path(settings.STEER_CHECKPOINT_DIR).resolve()
    folder = root / f"run-{int(run_id)}"
    try:
        if folder.is_symlink():
            log.warning("run %s: its folder %s is a link to %s; removed the link, not its target",
                        run_id, folder, folder.readlink())
            folder.unlink()
        elif folder.is_dir():
            shutil.rmtree(folder)
    except OSError:
        log.exception("run %s: could not remove its checkpoint folder %s", run_id, folder)


def run_execute(*, run_id: int, worker: str) -> str:
    """Execute a run on this worker (called by the Celery tasks); returns what happened, for logs."""
    kind = Run.objects.filter(pk=run_id).values_list("kind", flat=True).first()
    if kind == RunKind.POLICY:
        from webapp.experiments.execution import policy_run_execute

        return policy_run_execute(run_id=run_id, worker=worker)
    if kind == RunKind.EVALUATION:
        from webapp.experiments.evaluation import evaluation_run_execute

        return evaluation_run_execute(run_id=run_id, worker=worker)
    if kind == RunKind.REWARD_MODEL:
        from webapp.rewards.training import reward_model_run_execute

        return reward_model_run_execute(run_id=run_id, worker=worker)
    if kind == RunKind.DPO:
        from webapp.rewards.dpo_training import dpo_run_execute

        return dpo_run_execute(run_id=run_id, worker=worker)
    if kind == RunKind.SFT:
        from webapp.rewards.sft_training import sft_run_execute

        return sft_run_execute(run_id=run_id, worker=worker)
    return "skipped: no such run" if kind is None else f"skipped: {kind} runs are not executed here"
