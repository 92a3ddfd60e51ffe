from django.urls import path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from webapp.api import (
    artifacts,
    checkpoints,
    datasets,
    exports,
    feedback,
    metrics,
    policies,
    projects,
    rewards,
    runs,
    trajectories,
)
from webapp.api.errors import route_not_found
from webapp.api.throttling import ThrottledAuthenticationMixin


# The schema and its viewers check a token like every route: under the failed-token throttle
# (without it, a bad token could be tried against /schema/ at any rate).
class SchemaApi(ThrottledAuthenticationMixin, SpectacularAPIView):
    pass


class SchemaSwaggerView(ThrottledAuthenticationMixin, SpectacularSwaggerView):
    pass


class SchemaRedocView(ThrottledAuthenticationMixin, SpectacularRedocView):
    pass


class IdConverter:
    """A database id: at most 18 digits, so a longer number is a 404 rather than an overflow."""

    regex = "[0-9]{1,18}"
    to_python = int
    to_url = str


register_converter(IdConverter, "id")


class ArtifactPathConverter:
    """An artifact's path: any text (a newline too), so that every bad one reaches the view and
    answers 400 naming ``path`` rather than 404 "no route"."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ArtifactPathConverter, "artifact_path")

app_name = "api"
urlpatterns = [
    path("schema/", SchemaApi.as_view(), name="schema"),
    path("docs/", SchemaSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SchemaRedocView.as_view(url_name="api:schema"), name="redoc"),
    # projects, and the collections that belong to one
    path("projects/", projects.ProjectListApi.as_view(), name="project-list"),
    path("projects/<id:project_id>/", projects.ProjectDetailApi.as_view(), name="project-detail"),
    path("projects/<id:project_id>/members/", projects.MemberListApi.as_view(), name="member-list"),
    path("projects/<id:project_id>/members/<id:user_id>/", projects.MemberDetailApi.as_view(), name="member-detail"),
    path("projects/<id:project_id>/datasets/", datasets.DatasetListCreateApi.as_view(), name="dataset-list"),
    path("projects/<id:project_id>/runs/", runs.RunListCreateApi.as_view(), name="run-list"),
    path("projects/<id:project_id>/runs/sweep/", runs.RunSweepCreateApi.as_view(), name="run-sweep"),
    path("projects/<id:project_id>/policies/", policies.PolicyListCreateApi.as_view(), name="policy-list"),
    path("projects/<id:project_id>/rubrics/", feedback.RubricListCreateApi.as_view(), name="rubric-list"),
    path("projects/<id:project_id>/tasks/", feedback.TaskListApi.as_view(), name="task-list"),
    path("projects/<id:project_id>/labels/", feedback.LabelListApi.as_view(), name="label-list"),
    path("projects/<id:project_id>/labels/reject/", feedback.AnnotatorLabelsRejectApi.as_view(),
         name="annotator-labels-reject"),
    path("projects/<id:project_id>/reward-models/", rewards.RewardModelListApi.as_view(), name="reward-model-list"),
    path("projects/<id:project_id>/pair-sets/", rewards.PairSetListCreateApi.as_view(), name="pair-set-list"),
    path("projects/<id:project_id>/pair-sets/from-run/", rewards.PairSetFromRunApi.as_view(),
         name="pair-set-from-run"),
    path("projects/<id:project_id>/exports/preferences.jsonl", exports.PreferenceExportApi.as_view(),
         name="export-preferences"),
    path("projects/<id:project_id>/exports/labels.jsonl", exports.LabelExportApi.as_view(), name="export-labels"),
    path("projects/<id:project_id>/exports/labels.parquet", exports.LabelParquetExportApi.as_view(),
         name="export-labels-parquet"),
    # datasets
    path("datasets/<id:dataset_id>/", datasets.DatasetDetailApi.as_view(), name="dataset-detail"),
    path("datasets/<id:dataset_id>/prompts/", datasets.PromptListApi.as_view(), name="prompt-list"),
    # policies
    path("policies/<id:policy_id>/", policies.PolicyDetailApi.as_view(), name="policy-detail"),
    # runs and what they produce
    path("runs/<id:run_id>/", runs.RunDetailApi.as_view(), name="run-detail"),
    path("runs/<id:run_id>/cancel/", runs.RunCancelApi.as_view(), name="run-cancel"),
    path("runs/<id:run_id>/status/", runs.RunStatusApi.as_view(), name="run-status"),
    path("runs/<id:run_id>/metrics/", metrics.RunMetricsApi.as_view(), name="run-metrics"),
    path("runs/<id:run_id>/trajectories/", trajectories.RunTrajectoryListApi.as_view(), name="run-trajectories"),
    path("runs/<id:run_id>/exports/trajectories.jsonl", exports.RunTrajectoryExportApi.as_view(),
         name="export-run-trajectories"),
    path("runs/<id:run_id>/exports/trajectories.parquet", exports.RunTrajectoryParquetExportApi.as_view(),
         name="export-run-trajectories-parquet"),
    path("runs/<id:run_id>/exports/metrics.csv", exports.RunMetricExportApi.as_view(), name="export-run-metrics"),
    path("runs/<id:run_id>/held-out/", trajectories.RunHeldOutAnswerListApi.as_view(), name="run-held-out"),
    path("runs/<id:run_id>/checkpoints/", checkpoints.RunCheckpointListApi.as_view(), name="run-checkpoints"),
    path("runs/<id:run_id>/artifacts/", artifacts.RunArtifactListApi.as_view(), name="run-artifacts"),
    path("runs/<id:run_id>/artifacts/<artifact_path:artifact_path>", artifacts.RunArtifactApi.as_view(),
         name="run-artifact"),
    path("runs/<id:run_id>/head-to-head/", feedback.HeadToHeadApi.as_view(), name="run-head-to-head"),
    path("projects/<id:project_id>/reward-agreement/", feedback.RewardAgreementApi.as_view(),
         name="project-reward-agreement"),
    path("projects/<id:project_id>/quality/", feedback.QualityApi.as_view(), name="project-quality"),
    path("trajectories/<id:trajectory_id>/", trajectories.TrajectoryDetailApi.as_view(), name="trajectory-detail"),
    path("checkpoints/<id:checkpoint_id>/download/", checkpoints.CheckpointDownloadApi.as_view(),
         name="checkpoint-download"),
    path("metrics/history/", metrics.MetricHistoryApi.as_view(), name="metric-history"),
    path("metrics/latest/", metrics.MetricLatestApi.as_view(), name="metric-latest"),
    # feedback
    path("rubrics/<id:rubric_id>/", feedback.RubricDetailApi.as_view(), name="rubric-detail"),
    path("tasks/<id:task_id>/", feedback.TaskDetailApi.as_view(), name="task-detail"),
    path("tasks/<id:task_id>/labels/", feedback.LabelCreateApi.as_view(), name="label-create"),
    path("labels/<id:label_id>/", feedback.LabelDetailApi.as_view(), name="label-detail"),
    path("labels/<id:label_id>/reject/", feedback.LabelRejectApi.as_view(), name="label-reject"),
    path("labels/<id:label_id>/restore/", feedback.LabelRestoreApi.as_view(), name="label-restore"),
    # reward models
    path("reward-models/<id:reward_model_id>/", rewards.RewardModelDetailApi.as_view(), name="reward-model-detail"),
    path("reward-models/<id:reward_model_id>/download/", rewards.RewardModelDownloadApi.as_view(),
         name="reward-model-download"),
    path("pair-sets/<id:pair_set_id>/", rewards.PairSetDetailApi.as_view(), name="pair-set-detail"),
    path("pair-sets/<id:pair_set_id>/pairs.jsonl", rewards.PairSetPairsApi.as_view(), name="pair-set-pairs"),
    path("pair-sets/<id:pair_set_id>/pairs/", rewards.PairSetPairListApi.as_view(), name="pair-set-pair-list"),
    # anything else under /api/v1/ answers 404 in the API's error shape, not Django's HTML page
    re_path(r"^(?P<path>[\s\S]*)", route_not_found),  # [\s\S]: a newline too; no (?s), which reverse() refuses
]
