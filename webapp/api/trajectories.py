"""Trajectories: a run's sampled completions, filtered by step and reward; and a policy run's
greedy answers to its held-out prompts."""

from django.conf import settings
from django.db.models import JSONField
from django.db.models.functions import Coalesce
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from webapp.api.base import (
    EXTERNAL_ONLY, MAX_ID, BodySerializer, Conflict, SteerListApi, SteerRetrieveApi, TooLarge, body_keys_refuse_unknown,
    field_error, query_params,
)
from webapp.api.parsers import JSONParser
from webapp.api.permissions import RESEARCH, scoped_project_ids
from webapp.api.runs import run_for
from webapp.api.schema import errors
from webapp.datasets.parsing import ROLES
from webapp.experiments.models import HeldOutAnswer, RunKind, Trajectory
from webapp.experiments.trajectories import TrajectoryRecordError, trajectories_record

# Sampled completions per request from an external trainer.
TRAJECTORY_BATCH_LIMIT = 2_000


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=sorted(ROLES))
    content = serializers.CharField()


class TrajectoryOutputSerializer(serializers.ModelSerializer):
    prompt_messages = MessageSerializer(
        many=True, read_only=True, allow_null=True, source="chat_messages",
        help_text="The prompt as chat messages when it is a chat prompt (a dataset's, or one an external trainer "
                  "sent as messages), else null; prompt_text shows it as 'role: content'.")

    class Meta:
        model = Trajectory
        fields = [
            "id", "run", "step", "group_index", "sample_index", "prompt", "prompt_text", "prompt_messages",
            "completion", "rewards", "reward", "advantage", "length", "finish_reason", "created_at",
        ]


def with_chat_messages(trajectories):
    """``chat_messages`` on each row: the trajectory's own messages, else its dataset prompt's (one join)."""
    return trajectories.annotate(chat_messages=Coalesce("prompt_messages", "prompt__messages",
                                                        output_field=JSONField()))


class TrajectoryFilterSerializer(serializers.Serializer):
    step = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID)
    step_min = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID)
    step_max = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID)
    reward_min = serializers.FloatField(required=False)
    reward_max = serializers.FloatField(required=False)


FILTER_LOOKUPS = {
    "step": "step", "step_min": "step__gte", "step_max": "step__lte",
    "reward_min": "reward__gte", "reward_max": "reward__lte",
}


@extend_schema_field({"oneOf": [
    {"type": "string"},
    {"type": "array", "minItems": 1, "items": {
        "type": "object", "additionalProperties": False, "required": ["role", "content"],
        "properties": {"role": {"type": "string", "enum": sorted(ROLES)}, "content": {"type": "string"}}}},
]})
class PromptField(serializers.JSONField):
    """Text or chat messages (documentation: the endpoint checks records itself)."""


class TrajectoryRecordSerializer(BodySerializer):
    """Documentation of one record; the endpoint validates records with a faster loop."""

    step = serializers.IntegerField(min_value=0, max_value=2**31 - 1)
    group_index = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, help_text="Prompt group in the step (0).")
    sample_index = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, help_text="Completion in the group (0).")
    prompt = PromptField(help_text="The prompt: text, or chat messages [{\"role\", \"content\"}, ...] "
                                   "(roles system, user, assistant, tool; content a string), kept as messages.")
    completion = serializers.CharField(allow_blank=True, trim_whitespace=False,
                                       help_text="May be empty (a completion that ended at once).")
    reward = serializers.FloatField()
    # OpenAPI 3.0 (this schema's version) has no propertyNames to say a name is non-empty; the help says it
    rewards = serializers.DictField(
        child=serializers.FloatField(), required=False,
        help_text="Reward components by name, each a finite number ({\"accuracy\": 1.0, \"format\": 0.5}); "
                  "a name must be non-empty (\"\" answers 400 on records[i].rewards).")
    advantage = serializers.FloatField(required=False, allow_null=True)
    length = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, allow_null=True,
                                      help_text="Tokens; left out or null when unknown (stored and answered as null).")
    finish_reason = serializers.ChoiceField(choices=Trajectory.FinishReason.choices, required=False,
                                            allow_null=True, allow_blank=True, help_text="null or \"\": unknown.")


class TrajectoryBatchSerializer(BodySerializer):
    records = TrajectoryRecordSerializer(many=True, help_text=f"At most {TRAJECTORY_BATCH_LIMIT} per request.")


class RunTrajectoryListApi(SteerListApi):
    """GET: the run's trajectories, cursor-paginated; `?ordering=reward` or `-reward` to rank them.

    POST: an external trainer reports sampled completions; all or nothing, a bad record
    answers 400 naming its index and field.
    """

    project_roles = RESEARCH
    parser_classes = [JSONParser]
    serializer_class = TrajectoryOutputSerializer
    ordering_fields = ["id", "step", "reward"]
    ordering = ["id"]

    @extend_schema(parameters=[TrajectoryFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        run = run_for(self.request, self.kwargs["run_id"])
        params = query_params(self.request, TrajectoryFilterSerializer)
        rows = Trajectory.objects.filter(run=run, **{FILTER_LOOKUPS[k]: v for k, v in params.items()})
        return with_chat_messages(rows)

    @extend_schema(request=TrajectoryBatchSerializer,
                   responses={201: inline_serializer("TrajectoryBatchOutput", {"written": serializers.IntegerField()}),
                              **errors(409, 413)})
    def post(self, request, run_id: int):
        run = run_for(request, run_id)
        if run.kind != RunKind.EXTERNAL:
            raise Conflict(EXTERNAL_ONLY.format(what="trajectories"))
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isascii() and length.isdigit() and int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise TooLarge(f"the body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes")
        records = request.data.get("records") if isinstance(request.data, dict) else None
        if not isinstance(records, list):
            raise field_error("records", "send a JSON object {\"records\": [...]}")
        body_keys_refuse_unknown(request.data, ["records"])
        if len(records) > TRAJECTORY_BATCH_LIMIT:
            raise TooLarge(f"{len(records)} records in one batch; at most {TRAJECTORY_BATCH_LIMIT} per request")
        try:
            written = trajectories_record(run_id=run.id, records=records)
        except TrajectoryRecordError as exc:
            raise field_error(f"records[{exc.index}].{exc.field}", exc.message) from exc
        return Response({"written": written}, status=status.HTTP_201_CREATED)


class TrajectoryDetailApi(SteerRetrieveApi):
    project_roles = RESEARCH
    serializer_class = TrajectoryOutputSerializer
    lookup_url_kwarg = "trajectory_id"

    def get_queryset(self):
        rows = Trajectory.objects.filter(run__project_id__in=scoped_project_ids(self.request, RESEARCH))
        return with_chat_messages(rows)


class HeldOutAnswerOutputSerializer(serializers.ModelSerializer):
    index = serializers.IntegerField(source="prompt.index", help_text="The prompt's position in the held-out dataset.")
    prompt_text = serializers.CharField(source="prompt.display_text")
    reference = serializers.CharField(source="prompt.reference")

    class Meta:
        model = HeldOutAnswer
        fields = ["step", "prompt", "index", "prompt_text", "reference", "completion", "correct",
                  "samples_correct", "samples", "length", "finish_reason"]


class HeldOutFilterSerializer(serializers.Serializer):
    step = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID)
    correct = serializers.BooleanField(required=False, allow_null=True, default=None)


class RunHeldOutAnswerListApi(SteerListApi):
    """GET: a policy run's greedy answers to its held-out prompts at each step it evaluated
    them (``?step=``, ``?correct=false``), with how many of the pass@k samples were right;
    paged, in the order they were stored (by step, then the prompts' order)."""

    project_roles = RESEARCH
    serializer_class = HeldOutAnswerOutputSerializer
    ordering_fields = ["id", "step"]
    ordering = ["id"]  # stored step by step, each step's answers in the prompts' order

    @extend_schema(parameters=[HeldOutFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        run = run_for(self.request, self.kwargs["run_id"])
        params = query_params(self.request, HeldOutFilterSerializer)
        return HeldOutAnswer.objects.filter(run=run, **params).select_related("prompt")
