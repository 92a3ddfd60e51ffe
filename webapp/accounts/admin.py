from django.contrib import admin

from webapp.accounts.models import AccountOrigin, ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["prefix", "digest", "created_at", "last_used_at"]


@admin.register(AccountOrigin)
class AccountOriginAdmin(admin.ModelAdmin):
    list_display = ["user", "created_by_username", "project_name", "created_at"]
    search_fields = ["user__username", "created_by_username", "project_name"]
    readonly_fields = ["user", "created_by", "created_by_username", "project_name", "created_at"]
