"""Reads on reward models and their training data; every lookup scoped to a project."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
from django.db import connection
from django.db.models import (
    Case,
    Count,
    F,
    Max,
    Q,
    QuerySet,
    When,
    Window,
)
from django.db.models.functions import RowNumber
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.text import slugify

from webapp.core.json_sql import JSONArrayLength, array_elements_sql
from webapp.core.locks import rows_for_share
from webapp.core.tar_stream import folder_in_checkpoint_root
from webapp.experiments.errors import RunError
from webapp.feedback.models import PreferenceLabel
from webapp.feedback.ranking import ranking_pairs
from webapp.rewards.models import PreferencePairSet, RewardModel


def reward_model_list(*, project) -> QuerySet[RewardModel]:
    return RewardModel.objects.filter(project=project).select_related("training_run").order_by("-created_at")


def reward_model_get(*, project, reward_model_id: int) -> RewardModel:
    return get_object_or_404(RewardModel.objects.select_related("training_run"), pk=reward_model_id, project=project)


def reward_model_folder(*, reward_model: RewardModel) -> Path:
    """The folder the reward model was saved to (where the worker leaves it, inside the checkpoint
    root); 404 saying why while it is not trained yet or when its files are not on this server."""
    if not reward_model.is_ready:
        raise Http404("This reward model is not ready: its training run has not saved it yet.")
    return folder_in_checkpoint_root(reward_model.path, "This reward model's files are not on this server: "
                                                        "its folder is missing.")


def reward_model_download_name(*, reward_model: RewardModel) -> str:
    """``<slugified name>-<id>`` (``reward-model-<id>`` for a name with nothing to slugify)."""
    return f"{slugify(reward_model.name) or 'reward-model'}-{reward_model.pk}"


def reward_models_ready(*, project) -> QuerySet[RewardModel]:
    """Reward models a run can use as a reward: trained and saved."""
    return reward_model_list(project=project).exclude(path="")


def pair_set_list(*, project) -> QuerySet[PreferencePairSet]:
    return PreferencePairSet.objects.filter(project=project).defer("pairs").order_by("-created_at")


def label_count(*, project) -> int:
    """The project's labels that count (rejected ones left out), as runs on labels would read them."""
    return PreferenceLabel.objects.filter(task__project=project, rejected_at__isnull=True).count()


def preference_source_check(*, project, data: dict, eval_fraction: float = 0.0, seed: int = 0) -> dict:
    """The reward-model run's data section as it is to be stored, or RunError unless the data
    exists in this project and can train (called in the launch's transaction). Rejected labels
    (``webapp.feedback.review``) count nowhere, here or in the readers below. Labels are fixed
    at the newest one now (``through_label``), unless the section names one. Imported pairs
    always prefer one answer; labels may all be ties (or 'both bad'), or leave their only
    decisive ones in the held-out share that the run's ``eval_fraction`` and ``seed`` pick,
    which the worker refuses only once started."""
    if data["source"] == "pairs":
        # Inside the launch's transaction: the share lock keeps a deletion (FOR UPDATE) waiting
        # until the run is committed, so that the deletion sees it.
        rows = rows_for_share(PreferencePairSet.objects.filter(project=project, pk=data["pair_set"])
                              .values_list("pk", "name", "has_margin"))
        if not rows:
            raise RunError("no such set of imported pairs in this project", field="config.data")
        [(pair_set_id, name, has_margin)] = rows
        if has_margin:
            _pair_margins_check(pair_set_id=pair_set_id, name=name)
        return data
    # Counted in the database: the rankings of every label were read into the request.
    labels = PreferenceLabel.objects.filter(task__project=project, rejected_at__isnull=True)
    if "through_label" in data:
        labels = labels.filter(pk__lte=data["through_label"])
    labels = labels.annotate(tiers=JSONArrayLength(F("ranking")))
    counts = labels.aggregate(total=Count("id"), decisive=Count("id", filter=Q(tiers__gte=2)), last=Max("id"))
    total, decisive = counts["total"], counts["decisive"]
    fixed = {"source": "labels", "through_label": data.get("through_label", counts["last"]),
             **({"strength_margins": data["strength_margins"]} if "strength_margins" in data else {})}
    if not total:
        raise RunError("this project has no preference labels yet; import pairs to train on", field="config.data")
    if not decisive:
        raise RunError(f"all {total} of the project's labels are ties (or 'both bad'): nothing to learn a "
                       "preference from; label more tasks, or import pairs to train on", field="config.data")
    from workers.engine.rm_trainer import split_records  # here: it imports torch

    train, held_out = split_records(total, eval_fraction, seed)
    if decisive > len(held_out):  # more than the held-out share holds: one is trained on
        return fixed
    # The decisive labels' positions (no more than the held-out share) in the order
    # preference_records gives the engine, whose split is by position in it. The filter names
    # the window, so Django applies it after numbering every label.
    numbered = Case(When(tiers__gte=2, then=Window(RowNumber(), order_by=F("id").asc())))
    positions = set(labels.annotate(position=numbered).filter(position__isnull=False)
                    .values_list("position", flat=True))
    if not any(i + 1 in positions for i in train):
        raise RunError(f"the labels that prefer one answer ({decisive} of {total}) all fall in the "
                       f"held-out share (eval_fraction {eval_fraction}, seed {seed}), leaving only ties to train on; "
                       "lower config.eval_fraction, change config.seed or label more tasks", field="config.data")
    return fixed


def _pair_margins_check(*, pair_set_id: int, name: str) -> None:
    """RunError naming the first pair of the set whose stored margin is above MAX_PAIR_MARGIN,
    which the trainer refuses: a set imported before import bounded margins, whose run would
    only fail on the worker. One query over the stored pairs; none is read into Python."""
    from workers.engine.config import MARGIN_TOO_LARGE, MAX_PAIR_MARGIN

    if connection.vendor == "postgresql":
        margin = "CASE WHEN jsonb_typeof(e.element -> 'margin') = 'number' THEN (e.element ->> 'margin')::float8 END"
    else:
        margin = "CASE WHEN json_type(e.element, '$.margin') IN ('integer', 'real') THEN json_extract(e.element, '$.margin') END"
    with connection.cursor() as cursor:
        cursor.execute(pair_rows_sql(f"AND {margin} > %s ORDER BY e.n LIMIT 1"), [pair_set_id, MAX_PAIR_MARGIN])
        row = cursor.fetchone()
    if row is not None:
        position, pair = row[0], orjson.loads(row[1])
        raise RunError(f"pair {position} of the set {name!r} has a margin of {pair['margin']:g}, stored before "
                       f"imports were bounded; a margin {MARGIN_TOO_LARGE}. Import the set again with smaller "
                       "margins (or without them) and train on that one", field="config.data")


def preference_records(*, project, data: dict) -> list:
    """The engine's PreferenceRecords for a reward-model run's data section.

    Labels (through ``through_label``, rejected ones left out): one record per annotator label (raw, not aggregated), the
    task's candidates in position order and the label's ranking as tiers of positions; with
    ``strength_margins``, a label that says how much better its choice is gets that strength's
    margin (the others the run's ``margin``). Imported pairs: chosen ≻ rejected, with the pair's
    margin when it was imported with one.
    """
    from workers.engine.rm_trainer import PreferenceRecord  # noqa: PLC0415 (torch: worker side only)

    if data["source"] == "pairs":
        # A pair without a margin gives None: the run's config.margin applies to it.
        return [PreferenceRecord(p["prompt"], [p["chosen"], p["rejected"]], [[0], [1]], p.get("margin"))
                for p in pair_set_pairs(project=project, pair_set_id=data["pair_set"])]
    records = []
    labels = PreferenceLabel.objects.filter(task__project=project, rejected_at__isnull=True)
    if "through_label" in data:  # runs launched before labels were fixed at launch read them all
        labels = labels.filter(pk__lte=data["through_label"])
    labels = labels.select_related("task").prefetch_related("task__candidates").order_by("id")
    margins = data.get("strength_margins")
    for label in labels:
        task = label.task
        candidates = sorted(task.candidates.all(), key=lambda c: c.position)
        prompt = task.prompt_messages if task.prompt_messages else task.prompt_text
        margin = margins[label.strength - 1] if margins and label.strength else None
        records.append(PreferenceRecord(prompt, [c.text for c in candidates], [list(t) for t in label.ranking],
                                        margin))
    return records


def dpo_pairs_check(*, project, data: dict, otherwise: str = "train on a pair set") -> dict:
    """The DPO run's data section as it is to be stored, or RunError when it cannot train.

    A pair set must exist in this project (called in the launch's transaction: the share lock
    keeps a deletion waiting until the run is committed). Labels must hold one that prefers an
    answer; they are fixed at the newest label now (``through_label``), unless the section names one.
    ``otherwise`` ends the messages about labels: what else the run could train on.
    """
    if data["source"] == "pairs":
        if not rows_for_share(PreferencePairSet.objects.filter(project=project, pk=data["pair_set"])
                              .values_list("pk")):
            raise RunError("no such set of imported pairs in this project", field="config.data")
        return data
    labels = PreferenceLabel.objects.filter(task__project=project, rejected_at__isnull=True)
    if "through_label" in data:
        labels = labels.filter(pk__lte=data["through_label"])
    counts = labels.annotate(tiers=JSONArrayLength(F("ranking"))).aggregate(total=Count("id"), decisive=Count("id", filter=Q(tiers__gte=2)), last=Max("id"))
    if not counts["total"]:
        raise RunError(f"this project has no preference labels yet; label some tasks, or {otherwise}",
                       field="config.data")
    if not counts["decisive"]:
        raise RunError(f"all {counts['total']} of the labels are ties (or 'both bad'): no label prefers an answer; "
                       f"label more tasks, or {otherwise}", field="config.data")
    return {"source": "labels", "through_label": data.get("through_label", counts["last"])}


def dpo_pairs(*, project, data: dict) -> list:
    """The engine's PreferencePairs of a DPO run's data: a pair set's, in the order they were
    imported; or, from labels (raw, one annotator's at a time, in the order they were given,
    through ``through_label``), each pair of candidates a label ranks apart, the better one
    chosen, as the preference export gives them (ties, and pairs of one text twice, left out).
    A pair's margin is not read: DPO has none, as TRL's DPOTrainer."""
    from workers.engine.dpo import PreferencePair

    if data["source"] == "pairs":
        return [PreferencePair(p["prompt"], p["chosen"], p["rejected"])
                for p in pair_set_pairs(project=project, pair_set_id=data["pair_set"])]
    pairs = []
    labels = (PreferenceLabel.objects.filter(task__project=project, pk__lte=data["through_label"],
                                             rejected_at__isnull=True)
              .select_related("task").prefetch_related("task__candidates").order_by("id"))
    for label in labels.iterator(chunk_size=500):
        task = label.task
        texts = {c.position: c.text for c in task.candidates.all()}
        prompt = task.prompt_messages if task.prompt_messages else task.prompt_text
        pairs += [PreferencePair(prompt, texts[better], texts[worse])
                  for better, worse, tied in ranking_pairs(label.ranking)
                  if not tied and texts[better] != texts[worse]]
    return pairs


def sft_examples_check(*, project, data: dict) -> dict:
    """The SFT run's data section as it is to be stored, or RunError when it cannot train (called
    in the launch's transaction). Labels and pair sets are checked as a DPO run's (a label must
    prefer an answer; labels fixed at the newest now). A dataset must be the project's (share-locked
    until the run is committed, as the run's own dataset) and hold prompts that all have a reference."""
    if data["source"] != "dataset":
        return dpo_pairs_check(project=project, data=data,
                               otherwise="train on a pair set's chosen answers or a dataset's references")
    from webapp.datasets.models import Prompt, PromptDataset

    if not rows_for_share(PromptDataset.objects.filter(project=project, pk=data["dataset"]).values_list("pk")):
        raise RunError("no such prompt dataset in this project", field="config.data")
    prompts = Prompt.objects.filter(dataset_id=data["dataset"])
    counts = prompts.aggregate(total=Count("id"), missing=Count("id", filter=Q(reference="")))
    if not counts["total"]:
        raise RunError("the dataset has no prompts to train on", field="config.data")
    if counts["missing"]:
        first = prompts.filter(reference="").order_by("index").values_list("index", flat=True).first()
        raise RunError(f"{counts['missing']} of the dataset's {counts['total']} prompts have no reference answer "
                       f"(the first is row {first}, counted from 0): an SFT run learns each prompt's reference; "
                       "import a dataset whose rows all have one", field="config.data")
    return data


def sft_examples(*, project, data: dict) -> list:
    """The engine's SFTExamples of an SFT run's data: a pair set's chosen answers, in the order
    they were imported; a dataset's prompts with their references, in order; or, from labels (raw,
    one annotator's at a time, in the order they were given, through ``through_label``), the
    top-ranked answer(s) of each label that prefers one (ties-only and 'both bad' labels give none)."""
    from workers.engine.sft import SFTExample

    if data["source"] == "pairs":
        return [SFTExample(p["prompt"], p["chosen"]) for p in pair_set_pairs(project=project, pair_set_id=data["pair_set"])]
    if data["source"] == "dataset":
        from webapp.datasets.models import Prompt

        prompts = Prompt.objects.filter(dataset__project=project, dataset_id=data["dataset"]).order_by("index")
        return [SFTExample(p.engine_prompt(), p.reference) for p in prompts.iterator(chunk_size=2000)]
    examples = []
    labels = (PreferenceLabel.objects.filter(task__project=project, pk__lte=data["through_label"], both_bad=False,
                                             rejected_at__isnull=True)
              .select_related("task").prefetch_related("task__candidates").order_by("id"))
    for label in labels.iterator(chunk_size=500):
        if len(label.ranking) < 2:  # a tie of every candidate prefers none
            continue
        task = label.task
        texts = {c.position: c.text for c in task.candidates.all()}
        prompt = task.prompt_messages if task.prompt_messages else task.prompt_text
        examples += [SFTExample(prompt, texts[position]) for position in label.ranking[0]]
    return examples


def runs_using_reward_model(*, reward_model: RewardModel) -> list:
    """The project's runs whose rewards name this reward model's folder, newest first.

    Runs are resolved to folders at launch (``webapp.experiments.local_folders``), so a run's
    config holds the folder, not the id: the folders are compared after resolving links.
    """
    from webapp.experiments.local_folders import same_folder
    from webapp.experiments.models import Run

    runs = Run.objects.filter(project_id=reward_model.project_id, config__has_key="rewards").order_by("-id")
    return [run for run in runs.only("id", "name", "status", "kind", "config")
            if any(isinstance(r, dict) and r.get("name") == "reward_model"
                   and same_folder(r.get("path"), reward_model.path)
                   for r in (run.config.get("rewards") if isinstance(run.config.get("rewards"), list) else []))]


def runs_using_pair_set(*, pair_set: PreferencePairSet) -> QuerySet:
    """The project's reward-model, DPO and SFT runs that train on the imported pairs, newest first."""
    from webapp.experiments.models import Run, RunKind

    return (Run.objects.filter(project_id=pair_set.project_id,
                               kind__in=[RunKind.REWARD_MODEL, RunKind.DPO, RunKind.SFT],
                               config__data__source="pairs", config__data__pair_set=pair_set.pk)
            .order_by("-id").only("id", "name", "status"))


def pair_set_get(*, project, pair_set_id: int) -> PreferencePairSet:
    return get_object_or_404(PreferencePairSet.objects.defer("pairs"), pk=pair_set_id, project=project)


def pair_rows_sql(rest: str) -> str:
    """A query of ``(position, JSON text)`` for each pair of the set whose id is its first
    parameter, positions counted from 1 in stored order; ``rest`` goes after the WHERE clause."""
    return array_elements_sql(PreferencePairSet._meta.db_table, "pairs", rest)


PAIRS_CHUNK = 2000


def pair_set_pairs(*, project, pair_set_id: int) -> Iterator[dict]:
    """The pairs of the project's set (Http404 for another project's or none), in stored order,
    decoded as the model's JSONField decodes them, PAIRS_CHUNK at a time: a run's worker builds
    its training records from them without the set's whole JSON text and every pair as a dict in
    memory beside the records."""
    pk = get_object_or_404(PreferencePairSet.objects.defer("pairs"), project=project, pk=pair_set_id).pk
    return _pair_set_pairs(pk)


def _pair_set_pairs(pair_set_id: int) -> Iterator[dict]:
    with connection.chunked_cursor() as cursor:
        cursor.execute(pair_rows_sql("ORDER BY e.n"), [pair_set_id])
        while rows := cursor.fetchmany(PAIRS_CHUNK):
            for _, text in rows:
                yield json.loads(text)


def pair_set_pairs_page(*, pair_set_id: int, limit: int, after: int = 0,
                        before: int | None = None) -> list[tuple[int, dict]]:
    """Up to ``limit`` pairs of a set as ``(position, pair)``, positions counted from 1 in stored
    order, ascending: those after position ``after``, or, given ``before``, the last ones before it.

    The pairs are one JSON array in one row: PostgreSQL picks the page out of it, so a page of a
    set of 100,000 pairs brings ``limit`` pairs into Python, not the set."""
    if before is None:
        condition, order, params = "e.n > %s", "ASC", [after]
    else:
        condition, order, params = "e.n < %s", "DESC", [before]
    with connection.cursor() as cursor:
        cursor.execute(pair_rows_sql(f"AND {condition} ORDER BY e.n {order} LIMIT %s"),
                       [pair_set_id, *params, limit])
        rows = [(n, orjson.loads(text)) for n, text in cursor.fetchall()]
    return rows if before is None else rows[::-1]
