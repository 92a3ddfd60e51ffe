from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from webapp.api import checkpoints, datasets, exports, feedback, metrics, projects, rewards, runs, trajectories

app_name = "api"
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    # projects, and the collections that belong to one
    path("projects/", projects.ProjectListApi.as_view(), name="project-list"),
    path("projects/<int:project_id>/", projects.ProjectDetailApi.as_view(), name="project-detail"),
    path("projects/<int:project_id>/datasets/", datasets.DatasetListCreateApi.as_view(), name="dataset-list"),
    path("projects/<int:project_id>/runs/", runs.RunListCreateApi.as_view(), name="run-list"),
    path("projects/<int:project_id>/rubrics/", feedback.RubricListCreateApi.as_view(), name="rubric-list"),
    path("projects/<int:project_id>/tasks/", feedback.TaskListApi.as_view(), name="task-list"),
    path("projects/<int:project_id>/labels/", feedback.LabelListApi.as_view(), name="label-list"),
    path("projects/<int:project_id>/reward-models/", rewards.RewardModelListApi.as_view(), name="reward-model-list"),
    path("projects/<int:project_id>/exports/preferences.jsonl", exports.PreferenceExportApi.as_view(),
         name="export-preferences"),
    path("projects/<int:project_id>/exports/labels.jsonl", exports.LabelExportApi.as_view(), name="export-labels"),
    # datasets
    path("datasets/<int:dataset_id>/", datasets.DatasetDetailApi.as_view(), name="dataset-detail"),
    path("datasets/<int:dataset_id>/prompts/", datasets.PromptListApi.as_view(), name="prompt-list"),
    # runs and what they produce
    path("runs/<int:run_id>/", runs.RunDetailApi.as_view(), name="run-detail"),
    path("runs/<int:run_id>/cancel/", runs.RunCancelApi.as_view(), name="run-cancel"),
    path("runs/<int:run_id>/status/", runs.RunStatusApi.as_view(), name="run-status"),
    path("runs/<int:run_id>/metrics/", metrics.RunMetricsApi.as_view(), name="run-metrics"),
    path("runs/<int:run_id>/trajectories/", trajectories.RunTrajectoryListApi.as_view(), name="run-trajectories"),
    path("runs/<int:run_id>/checkpoints/", checkpoints.RunCheckpointListApi.as_view(), name="run-checkpoints"),
    path("trajectories/<int:trajectory_id>/", trajectories.TrajectoryDetailApi.as_view(), name="trajectory-detail"),
    path("checkpoints/<int:checkpoint_id>/download/", checkpoints.CheckpointDownloadApi.as_view(),
         name="checkpoint-download"),
    path("metrics/history/", metrics.MetricHistoryApi.as_view(), name="metric-history"),
    path("metrics/latest/", metrics.MetricLatestApi.as_view(), name="metric-latest"),
    # feedback
    path("rubrics/<int:rubric_id>/", feedback.RubricDetailApi.as_view(), name="rubric-detail"),
    path("tasks/<int:task_id>/", feedback.TaskDetailApi.as_view(), name="task-detail"),
    path("tasks/<int:task_id>/labels/", feedback.LabelCreateApi.as_view(), name="label-create"),
    path("labels/<int:label_id>/", feedback.LabelDetailApi.as_view(), name="label-detail"),
    # reward models
    path("reward-models/<int:reward_model_id>/", rewards.RewardModelDetailApi.as_view(), name="reward-model-detail"),
]
