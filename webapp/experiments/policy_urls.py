from django.urls import path

from webapp.experiments import policy_views

app_name = "policies"
urlpatterns = [
    path("", policy_views.policy_list_page, name="list"),
    path("new/", policy_views.policy_new_page, name="new"),
    path("<int:policy_id>/delete/", policy_views.policy_delete_page, name="delete"),
]
