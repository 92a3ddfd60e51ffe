from django.urls import path

from webapp.feedback import views

app_name = "feedback"
urlpatterns = [
    path("annotate/", views.annotate_page, name="annotate"),
    path("annotate/rejected/", views.my_rejected_labels_page, name="my_rejected"),
    path("annotate/<int:task_id>/", views.annotate_task_page, name="annotate_task"),
    path("annotate/<int:task_id>/submit/", views.label_submit_view, name="submit"),
    path("annotate/<int:task_id>/skip/", views.task_skip_view, name="skip"),
    path("annotate/unskip/", views.tasks_unskip_view, name="unskip"),
    path("labels/<int:label_id>/undo/", views.label_undo_view, name="undo"),
    path("labels/<int:label_id>/reject/", views.label_reject_view, name="label_reject"),
    path("labels/<int:label_id>/restore/", views.label_restore_view, name="label_restore"),
    path("rubrics/", views.rubric_list_page, name="rubrics"),
    path("rubrics/new/", views.rubric_create_page, name="rubric_create"),
    path("rubrics/<int:rubric_id>/", views.rubric_detail_page, name="rubric_detail"),
    path("rubrics/<int:rubric_id>/edit/", views.rubric_edit_page, name="rubric_edit"),
    path("tasks/", views.task_list_page, name="tasks"),
    path("tasks/import/", views.task_import_page, name="task_import"),
    path("tasks/from-run/", views.task_from_run_page, name="task_from_run"),
    path("tasks/head-to-head/", views.task_head_to_head_page, name="task_head_to_head"),
    path("tasks/<int:task_id>/", views.task_detail_page, name="task_detail"),
    path("quality/", views.quality_page, name="quality"),
    path("quality/annotators/<int:annotator_id>/reject/", views.annotator_reject_page, name="annotator_reject"),
    path("export/preferences.jsonl", views.export_preferences, name="export_preferences"),
    path("export/labels.jsonl", views.export_labels, name="export_labels"),
    path("export/labels.parquet", views.export_labels_parquet, name="export_labels_parquet"),
]
