from django.urls import path

from webapp.datasets import views

app_name = "datasets"
urlpatterns = [
    path("", views.dataset_list_page, name="list"),
    path("import/", views.dataset_import_page, name="import"),
    path("<int:dataset_id>/", views.dataset_detail_page, name="detail"),
    path("<int:dataset_id>/delete/", views.dataset_delete_page, name="delete"),
]
