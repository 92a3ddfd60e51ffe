"""Reward models (trained scorers a later run can use as a reward) and the preference pairs
they train on."""

from django.db import IntegrityError
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from webapp.api.base import (
    MAX_ID, BodySerializer, SteerApi, SteerFileApi, SteerListApi, SteerRetrieveApi, deleted, field_error, query_params,
)
from webapp.api.pagination import PositionCursorPagination
from webapp.api.permissions import RESEARCH, scoped_project_ids
from webapp.core.tar_stream import tar_download_response
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run
from webapp.rewards.errors import PairImportError, RewardModelError
from webapp.rewards.exports import pair_set_download_response
from webapp.rewards.models import PreferencePairSet, RewardModel
from webapp.rewards.selectors import (
    pair_set_list,
    pair_set_pairs_page,
    reward_model_download_name,
    reward_model_folder,
)
from webapp.rewards.services import (
    pair_set_delete,
    pair_set_from_run,
    pair_set_import,
    reward_model_delete,
)


class RewardModelOutputSerializer(serializers.ModelSerializer):
    is_ready = serializers.BooleanField(read_only=True)

    class Meta:
        model = RewardModel
        fields = ["id", "project", "name", "backbone", "ensemble_size", "training_run", "metrics",
                  "is_ready", "created_at"]


class RewardModelDeleteSerializer(serializers.Serializer):
    with_training_run = serializers.BooleanField(
        required=False, default=False,
        help_text="Also delete the run that trained the model, with its metrics, checkpoints and folder "
                  "(where the model's files lie).")


class RewardModelListApi(SteerListApi):
    project_roles = RESEARCH
    serializer_class = RewardModelOutputSerializer
    ordering_fields = ["id", "name", "created_at"]
    ordering = ["-id"]

    def get_queryset(self):
        return RewardModel.objects.filter(project=self.request.membership.project)


class RewardModelDetailApi(SteerRetrieveApi):
    """GET: the reward model. DELETE: remove it from its project, so that no new run can use it.

    DELETE answers 409 while a queued or running run uses it as a reward. Its files stay in its
    training run's folder unless ``?with_training_run=true`` deletes that run too. Finished runs
    that used it keep their configs and results.
    """

    project_roles = RESEARCH
    serializer_class = RewardModelOutputSerializer
    lookup_url_kwarg = "reward_model_id"

    def get_queryset(self):
        return RewardModel.objects.filter(project_id__in=scoped_project_ids(self.request, RESEARCH))

    @extend_schema(request=None, parameters=[RewardModelDeleteSerializer], responses={204: None})
    def delete(self, request, reward_model_id: int):
        reward_model = self.get_object()
        params = query_params(request, RewardModelDeleteSerializer)
        return deleted(lambda: reward_model_delete(reward_model_id=reward_model.id,
                                                   with_training_run=params["with_training_run"]),
                       refusals=(RewardModelError, RunError), gone=RewardModel.DoesNotExist, what="reward model")


class RewardModelDownloadApi(SteerFileApi):
    """GET: the reward model's folder as ``<slugified name>-<id>.tar`` (``reward_model.json``,
    ``heads.safetensors``, ``backbone/``), loadable with ``workers.engine.reward_model.load_reward_model``.
    404 for a model not trained yet or whose folder is not on this server, saying which."""

    project_roles = RESEARCH

    @extend_schema(responses={(200, "application/x-tar"): OpenApiTypes.BINARY})
    def get(self, request, reward_model_id: int):
        reward_model = get_object_or_404(RewardModel, pk=reward_model_id,
                                         project_id__in=scoped_project_ids(request, RESEARCH))
        try:
            folder = reward_model_folder(reward_model=reward_model)
        except Http404 as exc:  # the API's 404 would otherwise say only "Not found."
            raise exceptions.NotFound(str(exc)) from exc
        return tar_download_response(folder, reward_model_download_name(reward_model=reward_model))


# ---------------------------------------------------------------- preference pairs


class PairSetOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = PreferencePairSet
        fields = ["id", "project", "name", "pair_count", "created_at"]


class PairSetDetailOutputSerializer(PairSetOutputSerializer):
    pairs_url = serializers.SerializerMethodField(
        help_text="The set's pairs, a page at a time (``GET /pair-sets/<id>/pairs/``).")
    download_url = serializers.SerializerMethodField(
        help_text="The set's pairs as one streamed JSONL file (``GET /pair-sets/<id>/pairs.jsonl``).")

    class Meta(PairSetOutputSerializer.Meta):
        fields = PairSetOutputSerializer.Meta.fields + ["pairs_url", "download_url"]

    def _url(self, name: str, pair_set) -> str:
        return self.context["request"].build_absolute_uri(reverse(name, kwargs={"pair_set_id": pair_set.pk}))

    def get_pairs_url(self, pair_set) -> str:
        return self._url("api:pair-set-pair-list", pair_set)

    def get_download_url(self, pair_set) -> str:
        return self._url("api:pair-set-pairs", pair_set)


class PairOutputSerializer(serializers.Serializer):
    prompt = serializers.JSONField(help_text="A string, or chat messages: a list of {role, content}.")
    chosen = serializers.CharField()
    rejected = serializers.CharField()
    margin = serializers.FloatField(
        required=False, min_value=0,
        help_text="TRL's optional margin (0 to 20), present only when the pair was imported with one: a "
                  "reward-model run's Bradley-Terry loss is -log σ(r_chosen - r_rejected - margin).")


class PairSetListCreateApi(SteerListApi):
    """GET: the project's sets of preference pairs (without their pairs). POST: import a JSONL
    text of {prompt, chosen, rejected} lines (TRL's format) as a new set, all or nothing; a
    refused import names every bad line."""

    class PairImportInputSerializer(BodySerializer):
        name = serializers.CharField(max_length=120)
        content = serializers.CharField(trim_whitespace=False,
                                        help_text="JSONL: one {prompt, chosen, rejected} a line.")

    InputSerializer = PairImportInputSerializer
    project_roles = RESEARCH
    serializer_class = PairSetOutputSerializer
    ordering_fields = ["id", "name", "created_at"]
    ordering = ["-id"]

    def get_queryset(self):
        return pair_set_list(project=self.request.membership.project)

    @extend_schema(request=InputSerializer, responses={201: PairSetOutputSerializer})
    def post(self, request, project_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            pair_set = pair_set_import(project=request.membership.project, name=data.validated_data["name"],
                                       content=data.validated_data["content"], user=request.user)
        except PairImportError as exc:
            raise field_error("content", str(exc)) from exc
        except RewardModelError as exc:  # the name
            raise field_error(exc.field, exc.message) from exc
        except IntegrityError as exc:  # a concurrent import took the name
            raise field_error("name", "a set of pairs with this name already exists in this project") from exc
        return Response(PairSetOutputSerializer(pair_set).data, status=status.HTTP_201_CREATED)


class PairSetFromRunApi(SteerApi):
    """POST: a new set of pairs from a run's recorded completions, levelled by its total reward
    ("reward") or one reward component, pairs across levels within each prompt, widest gaps
    first (see the Reward models page's "Build pairs from a run")."""

    class PairsFromRunInputSerializer(BodySerializer):
        name = serializers.CharField(max_length=120)
        run = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        step_min = serializers.IntegerField(min_value=0, max_value=MAX_ID, default=0)
        step_max = serializers.IntegerField(min_value=0, max_value=MAX_ID, default=MAX_ID,
                                            help_text="The last step to take completions from; every step when left out.")
        rule = serializers.CharField(max_length=200, default="reward")
        min_gap = serializers.FloatField(min_value=0, default=0.0)
        max_pairs_per_group = serializers.IntegerField(min_value=1, default=4)

    InputSerializer = PairsFromRunInputSerializer
    project_roles = RESEARCH

    @extend_schema(request=InputSerializer, responses={201: PairSetOutputSerializer})
    def post(self, request, project_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        project = request.membership.project
        run = Run.objects.filter(project=project, pk=values.pop("run")).first()
        if run is None:
            raise field_error("run", "no run with this id in this project")
        try:
            pair_set = pair_set_from_run(project=project, run=run, user=request.user, **values)
        except RewardModelError as exc:
            raise field_error(exc.field, exc.message) from exc
        return Response(PairSetOutputSerializer(pair_set).data, status=status.HTTP_201_CREATED)


class PairSetPairsApi(SteerFileApi):
    """GET: the set's pairs as JSONL, streamed (TRL's preference format: plain text, or
    conversational throughout when any prompt is chat messages), for sets too large to read
    through the detail."""

    project_roles = RESEARCH

    @extend_schema(responses={(200, "application/jsonl"): OpenApiTypes.BINARY})
    def get(self, request, pair_set_id: int):
        pair_set = get_object_or_404(
            PreferencePairSet.objects.defer("pairs").select_related("project"), pk=pair_set_id,
            project_id__in=scoped_project_ids(request, RESEARCH))
        return pair_set_download_response(pair_set.project, pair_set)


class PairSetPairListApi(SteerListApi):
    """GET: the set's pairs, a page at a time, in the order they were stored, each as it was
    imported or built ({prompt, chosen, rejected}, the prompt a string or chat messages, and
    ``margin`` when it was imported with one)."""

    project_roles = RESEARCH
    serializer_class = PairOutputSerializer
    pagination_class = PositionCursorPagination
    filter_backends = []

    def list(self, request, pair_set_id: int):
        pair_set = get_object_or_404(PreferencePairSet.objects.defer("pairs"), pk=pair_set_id,
                                     project_id__in=scoped_project_ids(request, RESEARCH))
        pairs = self.paginator.paginate_positions(
            lambda **page: pair_set_pairs_page(pair_set_id=pair_set.pk, **page), request)
        return self.get_paginated_response(self.get_serializer(pairs, many=True).data)


class PairSetDetailApi(SteerRetrieveApi):
    """GET: one set, its ``pair_count`` and links to its pairs (``pairs_url`` a page at a time,
    ``download_url`` as one JSONL file), not the pairs themselves: a set holds up to 100,000.
    DELETE: delete it (204); 409 while a queued or running reward-model run trains on it.
    Finished runs that trained on it keep their configs."""

    project_roles = RESEARCH
    serializer_class = PairSetDetailOutputSerializer
    lookup_url_kwarg = "pair_set_id"

    def get_queryset(self):
        return (PreferencePairSet.objects.defer("pairs")
                .filter(project_id__in=scoped_project_ids(self.request, RESEARCH)))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pair_set_id: int):
        pair_set = self.get_object()
        return deleted(lambda: pair_set_delete(pair_set_id=pair_set.id), refusals=(RewardModelError,),
                       gone=PreferencePairSet.DoesNotExist, what="set of pairs")
