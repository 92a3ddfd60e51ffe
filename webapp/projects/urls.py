from django.urls import path

from webapp.projects import views

app_name = "projects"
urlpatterns = [
    path("", views.project_list, name="list"),
    path("new/", views.project_create_page, name="new"),
    path("<int:project_id>/", views.project_overview_page, name="overview"),
    path("<int:project_id>/settings/", views.project_settings_page, name="settings"),
    path("<int:project_id>/members/", views.member_list_page, name="members"),
    path("<int:project_id>/members/add/", views.member_add, name="member-add"),
    path("<int:project_id>/members/new-account/", views.member_account_create, name="member-account-create"),
    path("<int:project_id>/members/<int:user_id>/role/", views.member_role_change, name="member-role"),
    path("<int:project_id>/members/<int:user_id>/remove/", views.member_remove, name="member-remove"),
    path("<int:project_id>/leave/", views.project_leave, name="leave"),
]
