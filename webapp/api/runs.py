"""Runs: launch, list, read, cancel, delete, and the status reports of external trainers."""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from webapp.api.base import (
    MAX_ID,
    BodySerializer,
    Conflict,
    SteerApi,
    SteerListApi,
    SteerRetrieveApi,
    Unavailable,
    deleted,
    field_error,
    query_params,
)
from webapp.api.permissions import RESEARCH, scoped_project_ids
from webapp.api.schema import DateOrDateTimeField, JsonObjectField, errors
from webapp.datasets.models import PromptDataset
from webapp.experiments import services
from webapp.experiments.errors import (
    IdempotencyKeyReused,
    IllegalTransition,
    QueueUnavailable,
    RunError,
)
from webapp.experiments.models import PolicyModel, Run, RunKind, RunStatus, RunTag
from webapp.experiments.run_search import EXAMPLE, RunSearchError, conditions_parse
from webapp.experiments.selectors import (
    created_range_is_empty,
    runs_created_between,
    runs_where,
)
from webapp.experiments.sweeps import MAX_RUNS, SWEEP_KINDS, sweep_create


def _idempotency_key_header(description: str) -> OpenApiParameter:
    """The optional Idempotency-Key request header of a creation, as the schema describes it."""
    return OpenApiParameter("Idempotency-Key", {"type": "string", "pattern": services.IDEMPOTENCY_KEY.pattern},
                            OpenApiParameter.HEADER, required=False, description=description)


class RunOutputSerializer(serializers.ModelSerializer):
    worker_lost = serializers.BooleanField(read_only=True)
    tags = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id", "project", "name", "kind", "status", "progress", "current_step", "total_steps",
            "error", "cancel_requested", "worker_lost", "config", "dataset", "policy", "eval_dataset",
            "description", "tags", "created_at", "started_at", "finished_at",
        ]

    def get_tags(self, run) -> list[str]:
        return [tag.name for tag in run.tags.all()]


def runs_for(request):
    """Runs of the projects where the caller is a researcher or owner."""
    return Run.objects.filter(project_id__in=scoped_project_ids(request, RESEARCH))


def run_for(request, run_id: int) -> Run:
    run = runs_for(request).filter(pk=run_id).first()
    if run is None:
        raise Http404("No such run.")
    return run


class RunListCreateApi(SteerListApi):
    """GET: the project's runs (filter by status and kind). POST: launch a run.

    A launched policy, reward-model, DPO, SFT or evaluation run is validated against the engine's
    config and queued for a worker (a DPO run takes a ``policy`` and names its preference data,
    the project's labels or a pair set, in ``config.data``; an SFT run too, or a prompt dataset
    with references). An ``external`` run is driven by a trainer outside
    Steer (see ``steer_client.SteerCallback``), which reports its metrics and status.
    An ``Idempotency-Key`` header makes the POST safe to retry (``services.run_create_once``).
    """

    class RunFilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
        kind = serializers.ChoiceField(choices=RunKind.choices, required=False)
        search = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                       help_text="Runs whose name contains this, in any case.")
        tag = serializers.CharField(required=False, allow_blank=True, max_length=40,
                                    help_text="Runs with this tag, in any case.")
        where = serializers.CharField(required=False, allow_blank=True, max_length=1000,
                                      help_text="Conditions on settings (config.…) and metrics' latest values "
                                                f"(metrics.…) joined by and, as MLflow's search filter: {EXAMPLE}.")
        created_after = DateOrDateTimeField(
            required=False, help_text="Runs created at or after this: an ISO date (from its start, UTC) or datetime.")
        created_before = DateOrDateTimeField(
            required=False, help_text="Runs created at or before this: an ISO date (to its end, UTC) or datetime.")

        def validate(self, attrs):
            after, before = attrs.get("created_after"), attrs.get("created_before")
            if created_range_is_empty(after, before):
                message = f"{before.isoformat()} is before created_after, {after.isoformat()}: the range holds no run"
                raise serializers.ValidationError({"created_before": [message]})
            return attrs

    class RunCreateInputSerializer(BodySerializer):
        name = serializers.CharField(max_length=200)
        kind = serializers.ChoiceField(choices=RunKind.choices)
        config = JsonObjectField(required=False, default=dict, help_text="Engine config (a JSON object).")
        dataset = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID)
        policy = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID)
        eval_dataset = serializers.IntegerField(
            required=False, allow_null=True, min_value=1, max_value=MAX_ID,
            help_text="A policy run's held-out prompts (each with a reference), evaluated every "
                      "config eval.every_steps steps: eval/greedy_pass@1 and eval/pass@<k> metrics.")

    FilterSerializer, InputSerializer = RunFilterSerializer, RunCreateInputSerializer

    project_roles = RESEARCH
    serializer_class = RunOutputSerializer
    ordering_fields = ["id", "created_at", "name"]
    ordering = ["-id"]

    @extend_schema(parameters=[FilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = query_params(self.request, self.FilterSerializer)
        runs = Run.objects.filter(project=self.request.membership.project)
        search = params.pop("search", "")
        if search:
            runs = runs.filter(name__icontains=search)
        tag = params.pop("tag", "")
        if tag:
            runs = runs.filter(pk__in=RunTag.objects.filter(name__iexact=tag).values("run_id"))
        try:
            where = conditions_parse(params.pop("where", ""))
        except RunSearchError as exc:
            raise field_error("where", str(exc)) from None
        runs = runs_created_between(runs, after=params.pop("created_after", None),
                                    before=params.pop("created_before", None))
        runs = runs.filter(**params)
        return (runs_where(runs, where) if where else runs).prefetch_related("tags")

    @extend_schema(
        request=InputSerializer,
        parameters=[_idempotency_key_header(
            "Makes the creation safe to retry: 8–64 letters, digits or - _ . : (a UUID), made once per "
                        "run to create. A request that repeats a key you already created a run with in this project "
                        "answers that run (200) and creates nothing; the same key with a different body answers "
                        "409 `conflict`.")],
        responses={201: RunOutputSerializer,
                   200: OpenApiResponse(RunOutputSerializer, description="A repeated Idempotency-Key: the run that "
                                        "key created (as it stands now); nothing was created."),
                   **errors(409, 503)})
    def post(self, request, project_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project = request.membership.project
        dataset = _in_project(PromptDataset, project, values.get("dataset"), "dataset")
        policy = _in_project(PolicyModel, project, values.get("policy"), "policy")
        eval_dataset = _in_project(PromptDataset, project, values.get("eval_dataset"), "eval_dataset")
        try:
            run, created = services.run_create_once(
                project=project, user=request.user, idempotency_key=request.headers.get("Idempotency-Key"),
                name=values["name"], kind=values["kind"], config=values["config"], dataset=dataset, policy=policy,
                eval_dataset=eval_dataset,
            )
        except QueueUnavailable as exc:
            raise Unavailable(exc.message) from exc
        except IdempotencyKeyReused as exc:
            raise Conflict(exc.message) from exc
        except RunError as exc:
            raise field_error(exc.field, exc.message) from exc
        return Response(RunOutputSerializer(run).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _in_project(model, project, pk, field):
    """The project's object of ``model`` with id ``pk`` (None for None), else 400 naming ``field``."""
    if pk is None:
        return None
    obj = model.objects.filter(project=project, pk=pk).first()
    if obj is None:
        raise field_error(field, f"no {field.removeprefix('eval_')} with id {pk} in this project")
    return obj


class RunSweepCreateApi(SteerApi):
    """POST: launch a grid sweep, one run per combination of one or two settings' values, as the
    New-run, DPO, SFT and New-evaluation pages' *Sweep* does (``webapp.experiments.sweeps``): every
    run's config is checked before any is launched, then all are launched together, each named for
    its values and tagged. Answers the runs in the grid's order. An ``Idempotency-Key`` covers the
    whole sweep.

    A route of its own rather than a ``sweep`` key of the run creation: it answers a list of runs,
    where that one answers a run, so each operation's schema states exactly what it returns.
    """

    class RunSweepInputSerializer(BodySerializer):
        name = serializers.CharField(max_length=200, help_text="Each run's name begins with it, then its values.")
        kind = serializers.ChoiceField(
            choices=[(kind, RunKind(kind).label) for kind in SWEEP_KINDS],
            error_messages={"invalid_choice": "a sweep launches policy, dpo, sft or evaluation runs, not {input} runs"})
        config = JsonObjectField(required=False, default=dict,
                                 help_text="Engine config (a JSON object) the grid's values are set over.")
        sweep = JsonObjectField(help_text='Up to two settings and their values, e.g. {"optim.lr": [1e-6, 3e-6], '
                                          '"algorithm.beta": [0, 0.04]}: a setting is section.key or '
                                          "rewards[i].weight (one of config.rewards), 2 to 8 values each, at most "
                                          f"{MAX_RUNS} runs. An evaluation's are those it reads: rollout (its "
                                          "sampling), policy, rewards[i].weight, train.seed, train.device, "
                                          "train.fast_path.")
        sweep_tag = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                          help_text="The tag every run gets (no comma, at most 40 characters); "
                                                    "left out: sweep- and a short id.")
        dataset = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID)
        policy = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID)
        eval_dataset = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID)

    InputSerializer = RunSweepInputSerializer

    project_roles = RESEARCH

    @extend_schema(
        request=InputSerializer,
        parameters=[_idempotency_key_header(
            "Makes the sweep safe to retry: 8–64 letters, digits or - _ . : (a UUID), made once per "
                        "sweep to launch. A request that repeats it with the same body answers the runs it "
                        "launched (200) and launches nothing; with another body, or a key that created a run, "
                        "409 `conflict`; with the same body after some of its runs were deleted, 409 naming them "
                        "(send a new key to launch the sweep again).")],
        responses={201: RunOutputSerializer(many=True),
                   200: OpenApiResponse(RunOutputSerializer(many=True), description="A repeated Idempotency-Key: "
                                        "the runs that key launched (as they stand now); nothing was launched."),
                   **errors(409, 503)})
    def post(self, request, project_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project = request.membership.project
        try:
            sweep = sweep_create(
                project=project, user=request.user, idempotency_key=request.headers.get("Idempotency-Key"),
                name=values["name"], kind=values["kind"], config=values["config"], grid=values["sweep"],
                tag=values.get("sweep_tag", ""),
                dataset=_in_project(PromptDataset, project, values.get("dataset"), "dataset"),
                policy=_in_project(PolicyModel, project, values.get("policy"), "policy"),
                eval_dataset=_in_project(PromptDataset, project, values.get("eval_dataset"), "eval_dataset"))
        except QueueUnavailable as exc:
            raise Unavailable(exc.message) from exc
        except IdempotencyKeyReused as exc:
            raise Conflict(exc.message) from exc
        except RunError as exc:
            raise field_error(exc.field, exc.message) from exc
        runs = Run.objects.filter(pk__in=[run.pk for run in sweep.runs]).prefetch_related("tags").in_bulk()
        return Response(RunOutputSerializer([runs[run.pk] for run in sweep.runs], many=True).data,
                        status=status.HTTP_201_CREATED if sweep.created else status.HTTP_200_OK)


class RunDetailApi(SteerRetrieveApi):
    """GET: the run. PATCH: its name, description (Markdown notes) or tags. DELETE: delete a
    finished run with its trajectories, checkpoints and metrics.

    DELETE answers 409 for a queued or running run (cancel it first) and for a run that trained
    a reward model. Comparison tasks made from the run keep their candidates and labels.
    """

    class RunNotesInputSerializer(BodySerializer):
        name = serializers.CharField(required=False, max_length=200, trim_whitespace=False)
        description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                            help_text="The researcher's notes on the run, Markdown.")
        tags = serializers.ListField(child=serializers.CharField(allow_blank=True, trim_whitespace=False),
                                     required=False, max_length=100,
                                     help_text="Replace the run's tags: short texts (≤ 40 characters, no comma), "
                                               "at most 20; the first of those differing only in case is kept.")

    project_roles = RESEARCH
    serializer_class = RunOutputSerializer
    lookup_url_kwarg = "run_id"

    def get_queryset(self):
        return runs_for(self.request).prefetch_related("tags")

    @extend_schema(request=RunNotesInputSerializer, responses={200: RunOutputSerializer})
    def patch(self, request, run_id: int):
        """Set the run's name, description or tags (MLflow's run name, description and tags); a
        key left out is left as it is. All or nothing: a bad value answers 400 naming it."""
        run = run_for(request, run_id)
        data = self.RunNotesInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            run = services.run_notes_update(run_id=run.id, project=run.project, **data.validated_data)
        except RunError as exc:
            raise field_error(exc.field, exc.message) from exc
        except Run.DoesNotExist:
            raise Http404("No such run.") from None
        return Response(RunOutputSerializer(Run.objects.prefetch_related("tags").get(pk=run.pk)).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, run_id: int):
        run = run_for(request, run_id)
        return deleted(lambda: services.run_delete(run_id=run.id), refusals=(RunError,), gone=Run.DoesNotExist,
                       what="run")


class RunCancelApi(SteerApi):
    """Cancel a run: a queued one at once, a running one within a step (its worker stops it)."""

    project_roles = RESEARCH

    @extend_schema(request=None, responses={200: RunOutputSerializer, **errors(409)})
    def post(self, request, run_id: int):
        run = run_for(request, run_id)
        try:
            run = services.run_cancel(run_id=run.id)
        except RunError as exc:
            raise Conflict(exc.message) from exc
        return Response(RunOutputSerializer(run).data)


class RunStatusApi(SteerApi):
    """An external trainer reports its run's status: running, then succeeded or failed.

    Only runs of kind ``external`` take status reports; the state machine of
    ``run_transition`` decides which moves are legal (409 otherwise). "running" again, while the
    run runs, reports its progress (``current_step``, ``total_steps``): the run page's progress
    bar stood at 0 until the run ended, and the report was refused with 409.
    """

    class RunStatusInputSerializer(BodySerializer):
        status = serializers.ChoiceField(
            choices=[RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED]
        )
        error = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
        current_step = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
        total_steps = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)

    InputSerializer = RunStatusInputSerializer

    project_roles = RESEARCH

    @extend_schema(request=InputSerializer, responses={200: RunOutputSerializer, **errors(409)})
    def post(self, request, run_id: int):
        run = run_for(request, run_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if run.kind != RunKind.EXTERNAL:
            raise field_error("status", "only external runs report their status; a Steer run is driven by its worker")
        values = dict(data.validated_data)
        to = values.pop("status")
        total = values.get("total_steps", run.total_steps)
        current = values.get("current_step", run.current_step)
        if total:
            values["progress"] = min(1.0, current / total)
        if to == RunStatus.SUCCEEDED:
            values["progress"] = 1.0
        try:
            if to == RunStatus.RUNNING and run.status == RunStatus.RUNNING:  # progress while it runs
                run = services.run_progress_report(run_id=run.id, **values)
            else:
                run = services.run_transition(run_id=run.id, to=to, **values)
        except IllegalTransition as exc:
            raise Conflict(exc.message) from exc
        return Response(RunOutputSerializer(run).data)
