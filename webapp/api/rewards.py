"""Reward models: trained scorers a later run can use as a reward."""

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import filters, serializers, status
from rest_framework.response import Response

from webapp.api.base import Conflict, SteerListApi, SteerRetrieveApi, query_params
from webapp.api.permissions import RESEARCH, scoped_project_ids
from webapp.experiments.errors import RunError
from webapp.rewards.errors import RewardModelError
from webapp.rewards.models import RewardModel
from webapp.rewards.services import reward_model_delete


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
    filter_backends = [filters.OrderingFilter]
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
        try:
            reward_model_delete(reward_model_id=reward_model.id, with_training_run=params["with_training_run"])
        except (RewardModelError, RunError) as exc:
            raise Conflict(exc.message) from exc
        except RewardModel.DoesNotExist as exc:  # deleted by another request since get_object found it
            raise Http404("No such reward model.") from exc
        return Response(status=status.HTTP_204_NO_CONTENT)
