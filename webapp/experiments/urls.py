from django.urls import path

from webapp.experiments import artifact_views, views

app_name = "experiments"
urlpatterns = [
    path("", views.run_list_page, name="list"),
    path("new/", views.run_new_page, name="new"),
    path("new-evaluation/", views.evaluation_new_page, name="new_evaluation"),
    path("new-dpo/", views.dpo_new_page, name="new_dpo"),
    path("new-sft/", views.sft_new_page, name="new_sft"),
    path("compare/", views.run_compare_page, name="compare"),
    path("<int:run_id>/", views.run_detail_page, name="detail"),
    path("<int:run_id>/status/", views.run_status_partial, name="status"),
    path("<int:run_id>/notes/", views.run_notes_action, name="notes"),
    path("<int:run_id>/metrics.json", views.run_chart_data, name="chart_data"),
    path("<int:run_id>/cancel/", views.run_cancel_action, name="cancel"),
    path("<int:run_id>/delete/", views.run_delete_page, name="delete"),
    path("<int:run_id>/trajectories/", views.run_trajectories_partial, name="trajectories"),
    path("<int:run_id>/exports/trajectories.jsonl", views.run_trajectories_export, name="export_trajectories"),
    path("<int:run_id>/exports/trajectories.parquet", views.run_trajectories_parquet_export,
         name="export_trajectories_parquet"),
    path("<int:run_id>/exports/metrics.csv", views.run_metrics_export, name="export_metrics"),
    path("<int:run_id>/checkpoints/<int:checkpoint_id>/download/", views.run_checkpoint_download,
         name="checkpoint_download"),
    path("<int:run_id>/artifacts/upload/", artifact_views.run_artifact_upload_action, name="artifact_upload"),
    path("<int:run_id>/artifacts/files/<path:artifact_path>", artifact_views.run_artifact_download,
         name="artifact_download"),
    path("<int:run_id>/artifacts/delete/<path:artifact_path>", artifact_views.run_artifact_delete_page,
         name="artifact_delete"),
    path("<int:run_id>/held-out/", views.run_held_out_page, name="held_out"),
]
