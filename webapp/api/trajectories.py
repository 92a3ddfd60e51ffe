"""Trajectories: a run's sampled completions, filtered by step and reward."""

from drf_spectacular.utils import extend_schema
from rest_framework import filters, serializers

from webapp.api.base import SteerListApi, SteerRetrieveApi, query_params
from webapp.api.permissions import RESEARCH, scoped_project_ids
from webapp.api.runs import run_for
from webapp.experiments.models import Trajectory


class TrajectoryOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Trajectory
        fields = [
            "id", "run", "step", "group_index", "sample_index", "prompt", "prompt_text", "completion",
            "rewards", "reward", "advantage", "length", "finish_reason", "created_at",
        ]


class TrajectoryFilterSerializer(serializers.Serializer):
    step = serializers.IntegerField(required=False, min_value=0)
    step_min = serializers.IntegerField(required=False, min_value=0)
    step_max = serializers.IntegerField(required=False, min_value=0)
    reward_min = serializers.FloatField(required=False)
    reward_max = serializers.FloatField(required=False)


FILTER_LOOKUPS = {
    "step": "step", "step_min": "step__gte", "step_max": "step__lte",
    "reward_min": "reward__gte", "reward_max": "reward__lte",
}


class RunTrajectoryListApi(SteerListApi):
    """The run's trajectories, cursor-paginated; `?ordering=reward` or `-reward` to rank them."""

    project_roles = RESEARCH
    serializer_class = TrajectoryOutputSerializer
    filter_backends = [filters.OrderingFilter]
    ordering_fields = ["id", "step", "reward"]
    ordering = ["id"]

    @extend_schema(parameters=[TrajectoryFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        run = run_for(self.request, self.kwargs["run_id"])
        params = query_params(self.request, TrajectoryFilterSerializer)
        return Trajectory.objects.filter(run=run, **{FILTER_LOOKUPS[k]: v for k, v in params.items()})


class TrajectoryDetailApi(SteerRetrieveApi):
    project_roles = RESEARCH
    serializer_class = TrajectoryOutputSerializer
    lookup_url_kwarg = "trajectory_id"

    def get_queryset(self):
        return Trajectory.objects.filter(run__project_id__in=scoped_project_ids(self.request, RESEARCH))
