from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import (
    AdminPasswordChangeForm,
    AdminUserCreationForm,
    UserChangeForm,
)
from django.core.exceptions import ValidationError
from django.db import transaction

from webapp.accounts.errors import AccountError
from webapp.accounts.models import AccountOrigin, ApiToken
from webapp.accounts.services import (
    api_tokens_revoke_all,
    user_password_set,
    username_clean,
)


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


class RevokingAdminPasswordChangeForm(AdminPasswordChangeForm):
    """An administrator who sets (or disables) someone's password does so because it leaked
    or was forgotten: that user's API tokens are revoked in the same transaction."""

    def save(self, commit=True):
        if self.cleaned_data["set_usable_password"]:
            self.api_tokens_revoked = user_password_set(user=self.user, password=self.cleaned_data["password1"])
        else:
            with transaction.atomic():
                self.user.set_unusable_password()
                self.user.save(update_fields=["password"])
                self.api_tokens_revoked = api_tokens_revoke_all(user=self.user)
        return self.user


class LookAlikeCheckedUsername:
    """A username the administrator types is refused, like one typed on a Members page, when
    it would pass for another account's (``webapp.accounts.services.username_clean``)."""

    def clean_username(self):
        username = self.cleaned_data.get("username")
        if username and (self.instance.pk is None or "username" in self.changed_data):
            try:
                username = username_clean(username, exclude_pk=self.instance.pk)
            except AccountError as exc:
                raise ValidationError(exc.message[:1].upper() + exc.message[1:] + ".", code="look_alike") from None
        return username


class SteerUserCreationForm(LookAlikeCheckedUsername, AdminUserCreationForm):
    pass


class SteerUserChangeForm(LookAlikeCheckedUsername, UserChangeForm):
    pass


admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class SteerUserAdmin(UserAdmin):
    add_form = SteerUserCreationForm
    form = SteerUserChangeForm
    change_password_form = RevokingAdminPasswordChangeForm

    def construct_change_message(self, request, form, formsets, add=False):
        revoked = getattr(form, "api_tokens_revoked", None)
        if revoked is not None:  # the password form, saved
            messages.info(request, f"Revoked {revoked} API token{'s' if revoked != 1 else ''} of "
                                   f"{form.user.get_username()}.")
        return super().construct_change_message(request, form, formsets, add)
