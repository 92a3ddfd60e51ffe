from django.urls import path

from webapp.projects import views

app_name = "projects"
urlpatterns = [
    path("", views.project_list, name="list"),
    path("<int:project_id>/", views.project_overview_page, name="overview"),
]
