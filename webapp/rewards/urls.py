from django.urls import path

from webapp.rewards import views

app_name = "rewards"
urlpatterns = [
    path("", views.reward_model_list_page, name="list"),
    path("train/", views.reward_model_train_page, name="train"),
    path("pairs/import/", views.pair_import_page, name="import_pairs"),
    path("pairs/from-run/", views.pairs_from_run_page, name="pairs_from_run"),
    path("<int:reward_model_id>/delete/", views.reward_model_delete_page, name="delete"),
    path("<int:reward_model_id>/download/", views.reward_model_download_page, name="download"),
    path("pairs/<int:pair_set_id>/pairs.jsonl", views.pair_set_download_page, name="download_pairs"),
    path("pairs/<int:pair_set_id>/delete/", views.pair_set_delete_page, name="delete_pairs"),
]
