"""Rubrics, comparison tasks and preference labels.

Annotators reach these too (see webapp.api.permissions): they read rubrics and the tasks
of their projects, and the labels they wrote themselves. Gold answers of gold tasks are
shown to researchers only, so an annotator cannot look up the answers of the checks.
"""

from django.db.models import F, Prefetch
from django.core.exceptions import PermissionDenied
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from webapp.api.base import MAX_ID, BodySerializer, Conflict, SteerApi, SteerListApi, field_error, query_params
from webapp.api.parsers import JSONParser
from webapp.api.permissions import ANNOTATION, RESEARCH, label_scope, require_role, scoped_project_ids
from webapp.api.runs import run_for
from webapp.api.schema import RankingField, errors
from webapp.feedback.models import Candidate, ComparisonTask, Criterion, PreferenceLabel, Rubric, RubricVersion
from webapp.experiments.models import Run
from webapp.feedback.errors import FeedbackError, LabelConflict, TaskFilled, TaskFull
from webapp.feedback.head_to_head import comparison_tasks_head_to_head, head_to_head
from webapp.feedback.parsing import TaskImportError
from webapp.feedback.selectors import TOTAL_REWARD, quality_report, reward_agreement_rows
from webapp.feedback.review import MAX_REASON_CHARS
from webapp.feedback.services import (
    annotator_labels_reject, comparison_tasks_from_run, comparison_tasks_import_jsonl, label_reject, label_restore,
    label_submit_outcome, label_undo, rubric_create, rubric_update,
)


class CriterionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Criterion
        fields = ["position", "name", "description", "weight", "scale"]


class CriterionInputSerializer(BodySerializer):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    weight = serializers.FloatField(required=False, default=1.0)
    scale = serializers.ChoiceField(choices=Criterion.Scale.choices, required=False, default=Criterion.Scale.LIKERT_5)


class RubricOutputSerializer(serializers.ModelSerializer):
    version = serializers.SerializerMethodField()
    criteria = serializers.SerializerMethodField()

    class Meta:
        model = Rubric
        fields = ["id", "project", "name", "description", "version", "criteria", "created_at"]

    @staticmethod
    def _latest(rubric) -> RubricVersion | None:
        versions = list(rubric.versions.all())
        return max(versions, key=lambda v: v.number) if versions else None

    def get_version(self, rubric) -> int | None:
        latest = self._latest(rubric)
        return latest.number if latest else None

    @extend_schema_field(CriterionSerializer(many=True))
    def get_criteria(self, rubric):
        latest = self._latest(rubric)
        return CriterionSerializer(latest.criteria.all(), many=True).data if latest else []


def rubrics_in(project_ids):
    return Rubric.objects.filter(project_id__in=project_ids).prefetch_related("versions__criteria")


class RubricListCreateApi(SteerListApi):
    """GET: the project's rubrics with their latest criteria (any member). POST: a new rubric (research)."""

    class RubricCreateInputSerializer(BodySerializer):
        name = serializers.CharField(max_length=120)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        criteria = CriterionInputSerializer(many=True, min_length=1,
                                            error_messages={"min_length": "a rubric needs at least one criterion"})

    # JSON only: a form body has no encoding of the criteria (a list of objects) that DRF reads; its JSON part
    # was refused as missing, so a form body answers 415 as the schema says.
    parser_classes = [JSONParser]
    project_roles = ANNOTATION
    project_write_roles = RESEARCH
    serializer_class = RubricOutputSerializer
    ordering_fields = ["id", "name"]
    ordering = ["id"]

    def get_queryset(self):
        return rubrics_in([self.request.membership.project_id])

    @extend_schema(request=RubricCreateInputSerializer, responses={201: RubricOutputSerializer})
    def post(self, request, project_id: int):
        data = self.RubricCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            rubric = rubric_create(project=request.membership.project, user=request.user, **data.validated_data)
        except FeedbackError as exc:
            raise field_error(exc.field, exc.message) from exc
        rubric = rubrics_in([rubric.project_id]).get(pk=rubric.pk)
        return Response(RubricOutputSerializer(rubric).data, status=status.HTTP_201_CREATED)


class RubricDetailApi(SteerApi):
    """GET: a rubric with its latest criteria. PUT: rename it or replace its criteria.

    Changed criteria are stored as a new version, so labels scored against the old one keep
    their meaning.
    """

    class RubricUpdateInputSerializer(BodySerializer):
        name = serializers.CharField(max_length=120)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        criteria = CriterionInputSerializer(many=True, min_length=1,
                                            error_messages={"min_length": "a rubric needs at least one criterion"})

    # JSON only: a form body has no encoding of the criteria (a list of objects) that DRF reads; its JSON part
    # was refused as missing, so a form body answers 415 as the schema says.
    parser_classes = [JSONParser]
    project_roles = ANNOTATION

    def _rubric(self, request, rubric_id: int, roles) -> Rubric:
        rubric = rubrics_in(scoped_project_ids(request, roles)).filter(pk=rubric_id).first()
        if rubric is None:
            raise Http404("No such rubric.")
        return rubric

    @extend_schema(responses={200: RubricOutputSerializer})
    def get(self, request, rubric_id: int):
        return Response(RubricOutputSerializer(self._rubric(request, rubric_id, ANNOTATION)).data)

    @extend_schema(request=RubricUpdateInputSerializer, responses={200: RubricOutputSerializer})
    def put(self, request, rubric_id: int):
        rubric = self._rubric(request, rubric_id, ANNOTATION)
        require_role(request, rubric.project_id, RESEARCH)
        data = self.RubricUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            rubric_update(rubric=rubric, user=request.user, **data.validated_data)
        except FeedbackError as exc:
            raise field_error(exc.field, exc.message) from exc
        return Response(RubricOutputSerializer(self._rubric(request, rubric_id, RESEARCH)).data)


class CandidateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Candidate
        fields = ["position", "text"]


class TaskOutputSerializer(serializers.ModelSerializer):
    """What an annotator sees of a task."""

    candidates = CandidateSerializer(many=True, read_only=True)
    rubric_version = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = ComparisonTask
        fields = ["id", "project", "prompt_text", "prompt_messages", "candidates", "rubric_version",
                  "required_labels", "label_count", "created_at"]


class TaskResearchOutputSerializer(TaskOutputSerializer):
    """Researchers also see where the task came from and the gold answer of a gold task."""

    class ResearchCandidateSerializer(serializers.ModelSerializer):
        class Meta:
            model = Candidate
            fields = ["position", "text", "trajectory", "metadata"]

    candidates = ResearchCandidateSerializer(many=True, read_only=True)

    class Meta(TaskOutputSerializer.Meta):
        fields = TaskOutputSerializer.Meta.fields + ["source_run", "source_run_name", "is_gold", "gold_ranking"]
        # an annotator's tasks leave them out (the schema documents the researcher's view)
        schema_optional = ["source_run", "source_run_name", "is_gold", "gold_ranking"]


def tasks_in(project_ids):
    return ComparisonTask.objects.filter(project_id__in=project_ids).prefetch_related(
        Prefetch("candidates", queryset=Candidate.objects.order_by("position"))
    )


def task_serializer_for(request, task: ComparisonTask):
    researcher = task.project_id in scoped_project_ids(request, RESEARCH)
    return TaskResearchOutputSerializer if researcher else TaskOutputSerializer


class TaskFilterSerializer(serializers.Serializer):
    open = serializers.BooleanField(required=False, allow_null=True, default=None,
                                    help_text="true: tasks that still want labels; false: complete ones.")


class TaskListApi(SteerListApi):
    """GET: the project's comparison tasks (any member). POST: make tasks (research).

    POST takes one of ``run`` (tasks from that run's trajectories: one per prompt group,
    ``k`` completions each), ``runs`` (two run ids: blind comparisons, one task per prompt both
    answered, an answer of each; ``GET /runs/<id>/head-to-head/?against=<id>`` reads the
    result) or ``content`` (JSONL lines ``{"prompt", "completions", "gold_ranking"?,
    "metadata"?}``, all or nothing, bad lines named by number).
    """

    class TaskCreateInputSerializer(BodySerializer):
        run = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
        runs = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False,
                                     min_length=2, max_length=2, help_text="Two runs to compare blind.")
        step_min = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1, default=0)
        step_max = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1, default=2**31 - 1)
        k = serializers.IntegerField(required=False, default=2, min_value=0, max_value=1000)
        selection = serializers.ChoiceField(choices=["random", "spread"], required=False, default="random")
        max_tasks = serializers.IntegerField(required=False, default=100, min_value=0, max_value=1_000_000)
        content = serializers.CharField(required=False, trim_whitespace=False)
        required_labels = serializers.IntegerField(required=False, default=1, min_value=0, max_value=1000)
        rubric = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID)

    project_roles = ANNOTATION
    project_write_roles = RESEARCH
    ordering_fields = ["id", "created_at"]
    ordering = ["id"]

    def get_serializer_class(self):
        membership = getattr(self.request, "membership", None)
        if membership is not None and membership.can_research:
            return TaskResearchOutputSerializer
        return TaskOutputSerializer

    @extend_schema(parameters=[TaskFilterSerializer], responses={200: TaskResearchOutputSerializer(many=True)})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        queryset = tasks_in([self.request.membership.project_id])
        wanted = query_params(self.request, TaskFilterSerializer).get("open")
        if wanted is True:
            queryset = queryset.filter(label_count__lt=F("required_labels"))
        elif wanted is False:
            queryset = queryset.filter(label_count__gte=F("required_labels"))
        return queryset

    @extend_schema(request=TaskCreateInputSerializer, responses={201: TaskResearchOutputSerializer(many=True)})
    def post(self, request, project_id: int):
        data = self.TaskCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values, project = data.validated_data, request.membership.project
        if sum(key in values for key in ("run", "runs", "content")) != 1:
            raise field_error("run", "send exactly one of 'run' (tasks from its trajectories), 'runs' (two runs "
                                     "compared blind) or 'content' (JSONL)")
        rubric = None
        if values.get("rubric") is not None:
            rubric = Rubric.objects.filter(project=project, pk=values["rubric"]).first()
            if rubric is None:
                raise field_error("rubric", f"no rubric with id {values['rubric']} in this project")
        try:
            if "run" in values:
                run = Run.objects.filter(project=project, pk=values["run"]).first()
                if run is None:
                    raise field_error("run", f"no run with id {values['run']} in this project")
                tasks = comparison_tasks_from_run(
                    project=project, run=run, step_min=values["step_min"], step_max=values["step_max"],
                    k=values["k"], selection=values["selection"], max_tasks=values["max_tasks"],
                    required_labels=values["required_labels"], rubric=rubric)
            elif "runs" in values:
                found = {r.pk: r for r in Run.objects.filter(project=project, pk__in=values["runs"])}
                missing = [i for i in values["runs"] if i not in found]
                if missing:
                    raise field_error("runs", f"no run with id {missing[0]} in this project")
                tasks = comparison_tasks_head_to_head(
                    project=project, run_a=found[values["runs"][0]], run_b=found[values["runs"][1]],
                    max_tasks=values["max_tasks"], required_labels=values["required_labels"], rubric=rubric)
            else:
                tasks = comparison_tasks_import_jsonl(project=project, content=values["content"],
                                                      required_labels=values["required_labels"], rubric=rubric)
        except FeedbackError as exc:  # the service's two runs are this body's 'runs'
            raise field_error("runs" if exc.field in ("run_a", "run_b") else exc.field, exc.message) from exc
        except TaskImportError as exc:
            raise field_error("content", str(exc)) from exc
        created = tasks_in([project.id]).filter(pk__in=[t.pk for t in tasks])
        return Response(TaskResearchOutputSerializer(created, many=True).data, status=status.HTTP_201_CREATED)


class TaskDetailApi(SteerApi):
    project_roles = ANNOTATION

    @extend_schema(responses={200: TaskResearchOutputSerializer})
    def get(self, request, task_id: int):
        task = tasks_in(scoped_project_ids(request, ANNOTATION)).filter(pk=task_id).first()
        if task is None:
            raise Http404("No such task.")
        return Response(task_serializer_for(request, task)(task).data)


class LabelOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = PreferenceLabel
        fields = ["id", "task", "annotator", "ranking", "both_bad", "strength", "critique", "rubric_version",
                  "time_spent_ms", "created_at", "rejected_at", "rejection_reason"]
        extra_kwargs = {"rejected_at": {"help_text": "When a researcher rejected the label (it then counts nowhere: "
                                                     "not in exports, training or quality figures); null: it counts."},
                        "rejection_reason": {"help_text": "Why it was rejected, as the researcher said; empty if "
                                                          "they did not, or if it counts."}}


class LabelFilterSerializer(serializers.Serializer):
    task = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    annotator = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class LabelListApi(SteerListApi):
    """The project's labels, raw (one per annotator and task); an annotator sees only their own."""

    project_roles = ANNOTATION
    serializer_class = LabelOutputSerializer
    ordering_fields = ["id", "created_at"]
    ordering = ["id"]

    @extend_schema(parameters=[LabelFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = query_params(self.request, LabelFilterSerializer)
        queryset = PreferenceLabel.objects.filter(label_scope(self.request),
                                                  task__project_id=self.request.membership.project_id)
        if "task" in params:
            queryset = queryset.filter(task_id=params["task"])
        if "annotator" in params:
            queryset = queryset.filter(annotator_id=params["annotator"])
        return queryset


class LabelCreateApi(SteerApi):
    """Submit the caller's label of a task (any member of its project).

    ``submission_key`` (8–64 characters, made once per judgement) makes a retry harmless:
    the label already stored is answered with 200 instead of 201. Another key for a task the
    caller has labelled already is a second judgement: 409 ``conflict``, nothing changes. So is
    a new label for a task that has the labels it wants (``required_labels``; gold tasks take
    every annotator's): 409, nothing stored, and the caller's assignment of the task released.
    """

    class LabelCreateInputSerializer(BodySerializer):
        ranking = RankingField(help_text="Tiers of candidate positions, best first: [[1], [0]] = B over A, "
                                         "[[0, 1]] a tie; or, without ties, the positions best first (an order, "
                                         "not each one's rank): [2, 0, 1] = [[2], [0], [1]]. Each candidate "
                                         "exactly once.")
        both_bad = serializers.BooleanField(required=False, default=False)
        strength = serializers.IntegerField(
            required=False, allow_null=True, default=None, min_value=1, max_value=3,
            help_text="With two candidates and one preferred: how much better it is, 1 slightly, 2 better, "
                      "3 much better (HelpSteer2-Preference's magnitudes); null or left out: not said.")
        critique = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
        scores = serializers.DictField(
            child=serializers.DictField(child=serializers.FloatField()), required=False, allow_null=True,
            help_text="{candidate position: {criterion id: value}} against the task's rubric.")
        time_spent_ms = serializers.IntegerField(
            required=False, allow_null=True, default=None, min_value=0, max_value=MAX_ID,
            help_text="Milliseconds spent on the label, as your client measured them. Left out or null: the time "
                      "since your assignment of the task was made (at most its expiry window), or, without one, "
                      "null (unknown).")
        submission_key = serializers.CharField(min_length=8, max_length=64, error_messages=dict.fromkeys(
            ["min_length", "max_length"], "a submission key of 8 to 64 characters is required"))

    # JSON only: a form body has no encoding of the scores (an object of objects) that DRF reads; their JSON
    # part was dropped without a word and the label stored without them, so a form body answers 415.
    parser_classes = [JSONParser]
    project_roles = ANNOTATION

    @extend_schema(request=LabelCreateInputSerializer,
                   responses={201: LabelOutputSerializer, 200: LabelOutputSerializer, **errors(409)})
    def post(self, request, task_id: int):
        task = ComparisonTask.objects.filter(project_id__in=scoped_project_ids(request, ANNOTATION), pk=task_id).first()
        if task is None:
            raise Http404("No such task.")
        data = self.LabelCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        scores = values.pop("scores", None)
        if scores:
            try:
                scores = {int(position): {int(c): v for c, v in by_criterion.items()}
                          for position, by_criterion in scores.items()}
            except ValueError as exc:
                raise field_error("scores", "positions and criterion ids must be whole numbers") from exc
        try:
            label, created = label_submit_outcome(task=task, annotator=request.user, scores=scores, **values)
        except (LabelConflict, TaskFilled) as exc:
            raise Conflict(exc.message) from exc
        except FeedbackError as exc:
            raise field_error(exc.field, exc.message) from exc
        return Response(LabelOutputSerializer(label).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class LabelDetailApi(SteerApi):
    """GET: one label (researchers: any of their projects; annotators: their own).

    DELETE: withdraw your own label within the undo window (the task comes back to you).
    """

    project_roles = ANNOTATION

    def _label(self, request, label_id: int) -> PreferenceLabel:
        label = PreferenceLabel.objects.filter(label_scope(request), pk=label_id).first()
        if label is None:
            raise Http404("No such label.")
        return label

    @extend_schema(responses={200: LabelOutputSerializer})
    def get(self, request, label_id: int):
        return Response(LabelOutputSerializer(self._label(request, label_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, label_id: int):
        label = self._label(request, label_id)
        if label.annotator_id != request.user.id:
            raise PermissionDenied("Only the annotator who wrote a label can withdraw it.")
        try:
            label_undo(label_id=label.id, annotator=request.user)
        except FeedbackError as exc:
            raise Conflict(exc.message) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


def label_for_review(request, label_id: int) -> PreferenceLabel:
    """The label, if the caller may see it (404 otherwise), and may review it: 403 for an annotator."""
    label = PreferenceLabel.objects.filter(label_scope(request), pk=label_id).select_related("task__project").first()
    if label is None:
        raise Http404("No such label.")
    require_role(request, label.task.project_id, RESEARCH)
    return label


class ReasonInputSerializer(BodySerializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_REASON_CHARS,
                                   help_text="Why, kept with the label (optional).")


class LabelRejectApi(SteerApi):
    """Reject a label (researchers): it is kept, with who rejected it, when and why, but counts
    nowhere (exports, training, quality figures, head-to-head results), and its task wants another
    label. Rejecting a rejected label changes nothing; either way the label is answered as it stands."""

    project_roles = ANNOTATION

    @extend_schema(request=ReasonInputSerializer, responses={200: LabelOutputSerializer})
    def post(self, request, label_id: int):
        label = label_for_review(request, label_id)
        data = ReasonInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            label = label_reject(label_id=label.pk, project=label.task.project, by=request.user,
                                 reason=data.validated_data["reason"])
        except FeedbackError as exc:
            raise field_error(exc.field, exc.message) from exc
        return Response(LabelOutputSerializer(label).data)


class LabelRestoreApi(SteerApi):
    """Restore a rejected label (researchers): it counts again. Restoring a label that counts
    changes nothing; either way the label is answered as it stands. No body (as a run's cancel).
    409 while the label's task has the labels it wants (its slot was filled again): reject one
    of them first."""

    project_roles = ANNOTATION

    @extend_schema(request=None, responses={200: LabelOutputSerializer, **errors(409)})
    def post(self, request, label_id: int):
        label = label_for_review(request, label_id)
        try:
            label = label_restore(label_id=label.pk, project=label.task.project, by=request.user)
        except TaskFull as exc:
            raise Conflict(exc.message) from exc
        return Response(LabelOutputSerializer(label).data)


class AnnotatorLabelsRejectOutputSerializer(serializers.Serializer):
    rejected = serializers.IntegerField(help_text="How many labels this call rejected (those rejected before are "
                                                  "not counted).")


class AnnotatorLabelsRejectApi(SteerApi):
    """Reject every label of one annotator in the project that still counts (researchers): a
    spammer's, say. 400 on ``annotator`` for a user with no labels in the project."""

    class AnnotatorLabelsRejectInputSerializer(ReasonInputSerializer):
        annotator = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The annotator's user id.")

    project_roles = RESEARCH

    @extend_schema(request=AnnotatorLabelsRejectInputSerializer, responses={200: AnnotatorLabelsRejectOutputSerializer})
    def post(self, request, project_id: int):
        data = self.AnnotatorLabelsRejectInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            n = annotator_labels_reject(project=request.membership.project, by=request.user,
                                        annotator_id=data.validated_data["annotator"],
                                        reason=data.validated_data["reason"])
        except FeedbackError as exc:
            raise field_error(exc.field, exc.message) from exc
        return Response(AnnotatorLabelsRejectOutputSerializer({"rejected": n}).data)


class HeadToHeadOutputSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    against = serializers.IntegerField()
    tasks = serializers.IntegerField(help_text="Tasks that put an answer of each run side by side.")
    labels = serializers.IntegerField()
    wins = serializers.IntegerField(help_text="Labels that ranked this run's answer higher.")
    losses = serializers.IntegerField()
    ties = serializers.IntegerField(help_text="Ties and 'both bad' votes.")
    win_rate = serializers.FloatField(allow_null=True, help_text="(wins + ties / 2) / labels; null without labels.")
    interval = serializers.ListField(child=serializers.FloatField(), allow_null=True,
                                     help_text="The Wilson 95 % interval of win_rate.")


class HeadToHeadApi(SteerApi):
    """GET ``?against=<run id>``: how annotators ranked this run's answers against the other
    run's, over the blind comparisons of the two (``POST /projects/<id>/tasks/`` with ``runs``).
    ``against`` names a run of the same project (or a deleted one that left comparisons): 404
    otherwise, where it answered zero tasks as if the runs had not been compared yet."""

    class HeadToHeadQuerySerializer(serializers.Serializer):
        against = serializers.IntegerField(min_value=1, max_value=MAX_ID)

    project_roles = RESEARCH

    @extend_schema(parameters=[HeadToHeadQuerySerializer], responses={200: HeadToHeadOutputSerializer})
    def get(self, request, run_id: int):
        run = run_for(request, run_id)
        against = query_params(request, self.HeadToHeadQuerySerializer)["against"]
        if against == run.id:
            raise field_error("against", "a run is not compared with itself; name the other run")
        result = head_to_head(project=run.project, run_a_id=run.id, run_b_id=against)
        if not result.tasks and not run.project.runs.filter(pk=against).exists():
            # a deleted run's comparisons still count (result.tasks); any other id is no run of the project
            raise exceptions.NotFound(f"No such run: {against}.")
        return Response(HeadToHeadOutputSerializer({
            "run": run.id, "against": against, "tasks": result.tasks, "labels": result.labels,
            "wins": result.a_wins, "losses": result.b_wins, "ties": result.ties, "win_rate": result.win_rate,
            "interval": list(result.interval) if result.interval else None}).data)


class RewardAgreementOutputSerializer(serializers.Serializer):
    reward = serializers.CharField(allow_null=True, help_text="A reward's name; null for the total.")
    total = serializers.BooleanField(help_text="The weighted sum of the rewards the run trained on.")
    pairs = serializers.IntegerField(help_text="Candidate pairs a label put in order, both scored by this reward.")
    separated = serializers.IntegerField(help_text="Of those, the pairs the reward gave different values.")
    agreement = serializers.FloatField(allow_null=True,
                                       help_text="Share of the separated pairs the reward orders as the label does.")
    interval = serializers.ListField(child=serializers.FloatField(), allow_null=True,
                                     help_text="The Wilson 95 % interval of agreement, counting every pair as "
                                               "independent (pairs from one ranking are not, so it is too narrow).")


class RewardAgreementApi(SteerApi):
    """GET: how each reward that runs gave their completions orders the completions annotators
    ranked, over the project's tasks made from runs (``?run=<id>``: from that run only); only two
    completions the same run scored are compared."""

    class RewardAgreementQuerySerializer(serializers.Serializer):
        run = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)

    project_roles = RESEARCH

    @extend_schema(parameters=[RewardAgreementQuerySerializer],
                   responses={200: RewardAgreementOutputSerializer(many=True)})
    def get(self, request, project_id: int):
        run_id = query_params(request, self.RewardAgreementQuerySerializer).get("run")
        project = request.membership.project
        if run_id is not None and not project.runs.filter(pk=run_id).exists():
            raise Http404("No such run.")
        rows = reward_agreement_rows(project=project, run_id=run_id)
        return Response(RewardAgreementOutputSerializer([reward_agreement_out(r) for r in rows], many=True).data)


def reward_agreement_out(row) -> dict:
    total = row.key == TOTAL_REWARD
    return {"reward": None if total else row.key, "total": total, "pairs": row.pairs, "separated": row.decided,
            "agreement": row.agreement, "interval": list(row.interval) if row.interval else None}


class RatioSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="null when there is nothing to compute it from.")
    n = serializers.IntegerField(source="total", help_text="How many comparisons (or pairs) it is computed from.")


class AnnotatorQualitySerializer(serializers.Serializer):
    annotator = serializers.IntegerField(source="annotator_id")
    username = serializers.CharField()
    labels = serializers.IntegerField()
    agreement = serializers.FloatField(allow_null=True)
    agreement_n = serializers.IntegerField()
    tau_b = serializers.FloatField(allow_null=True)
    tau_b_n = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_n = serializers.IntegerField()
    labels_per_hour = serializers.FloatField(allow_null=True)
    rejected = serializers.IntegerField(help_text="The annotator's labels rejected in review, counted in none of "
                                                  "the figures.")


class CriterionAlphaSerializer(serializers.Serializer):
    rubric = serializers.CharField()
    criterion = serializers.CharField()
    scale = serializers.CharField()
    alpha = serializers.FloatField(allow_null=True, help_text="Krippendorff's alpha, ordinal metric.")
    units = serializers.IntegerField(help_text="Candidate scores given by two annotators or more.")


class QualityOutputSerializer(serializers.Serializer):
    labels = serializers.IntegerField(source="label_count")
    agreement = RatioSerializer(help_text="Pairwise agreement between annotators on the same task.")
    tau_b = RatioSerializer(help_text="Mean Kendall tau-b of two annotators' rankings of a task.")
    gold_accuracy = RatioSerializer(help_text="Share of gold-ordered pairs the annotators ordered the same way.")
    labels_per_hour = serializers.FloatField(allow_null=True)
    annotators = AnnotatorQualitySerializer(many=True)
    criteria = CriterionAlphaSerializer(many=True, source="criterion_alphas")
    rewards = RewardAgreementOutputSerializer(many=True, source="reward_agreement_out")


class QualityApi(SteerApi):
    """GET: the project's label quality, as on its Quality page: agreement between annotators,
    tau-b, gold accuracy and pace, overall and per annotator; Krippendorff's alpha per rubric
    criterion; and each reward's agreement with the labels (as ``reward-agreement/``)."""

    project_roles = RESEARCH

    @extend_schema(responses={200: QualityOutputSerializer})
    def get(self, request, project_id: int):
        report = quality_report(project=request.membership.project)
        report["reward_agreement_out"] = [reward_agreement_out(r) for r in report["reward_agreement"]]
        return Response(QualityOutputSerializer(report).data)
