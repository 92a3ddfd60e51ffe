"""Reward models: trained scorers a later run can use as a reward."""

from rest_framework import filters, serializers

from webapp.api.base import SteerListApi, SteerRetrieveApi
from webapp.api.permissions import RESEARCH, scoped_project_ids
from webapp.rewards.models import RewardModel


class RewardModelOutputSerializer(serializers.ModelSerializer):
    is_ready = serializers.BooleanField(read_only=True)

    class Meta:
        model = RewardModel
        fields = ["id", "project", "name", "backbone", "ensemble_size", "training_run", "metrics",
                  "is_ready", "created_at"]


class RewardModelListApi(SteerListApi):
    project_roles = RESEARCH
    serializer_class = RewardModelOutputSerializer
    filter_backends = [filters.OrderingFilter]
    ordering_fields = ["id", "name", "created_at"]
    ordering = ["-id"]

    def get_queryset(self):
        return RewardModel.objects.filter(project=self.request.membership.project)


class RewardModelDetailApi(SteerRetrieveApi):
    project_roles = RESEARCH
    serializer_class = RewardModelOutputSerializer
    lookup_url_kwarg = "reward_model_id"

    def get_queryset(self):
        return RewardModel.objects.filter(project_id__in=scoped_project_ids(self.request, RESEARCH))
