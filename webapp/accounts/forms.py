import uuid

from django import forms
from django.contrib.auth.forms import PasswordChangeForm
from django.core.exceptions import ValidationError

from webapp.accounts.auth_failures import failure_refund, failure_reserve, login_limits
from webapp.accounts.models import ApiToken
from webapp.accounts.services import TOKEN_LIFETIMES_DAYS, user_password_set


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. 'notebook' or 'trl-cluster'.")
    expires_in_days = forms.TypedChoiceField(
        label="Expires", coerce=int, empty_value=None, required=False, initial=90,
        choices=[*((days, f"in {days} days") for days in TOKEN_LIFETIMES_DAYS), ("", "never")],
        help_text="A token that leaks stops working by itself; revoke it at once if you know it has.")
    # One per rendered form: the same form posted again (a reload of the page that showed the
    # token) makes no second token.
    submission_key = forms.CharField(min_length=8, max_length=64, widget=forms.HiddenInput,
                                     initial=lambda: uuid.uuid4().hex)


class ThrottledPasswordChangeForm(PasswordChangeForm):
    """Django's password change, with the old password checked under the same limits as a
    log-in (per client address and per username): a stolen session cannot guess it at speed.
    It also revokes the user's API tokens, unless they untick the box: someone who changes a
    password they fear has leaked expects whoever has it locked out of the API too."""

    revoke_api_tokens = forms.BooleanField(required=False, initial=True)

    def __init__(self, user, *args, request, **kwargs):
        super().__init__(user, *args, **kwargs)
        self.request = request
        active = ApiToken.objects.filter(user=user).active().count()
        self.fields["revoke_api_tokens"].label = f"Also revoke my API tokens ({active} active)"
        self.api_tokens_revoked = 0

    def save(self, commit=True):
        """The new password and the revocation, in one transaction."""
        self.api_tokens_revoked = user_password_set(user=self.user, password=self.cleaned_data["new_password1"],
                                                    revoke_api_tokens=self.cleaned_data["revoke_api_tokens"])
        return self.user

    def clean_old_password(self):
        old_password = self.cleaned_data["old_password"]
        reservation = failure_reserve(limits=login_limits(self.request, self.user.get_username()))
        if reservation.wait:
            minutes = -(-reservation.wait // 60)
            raise ValidationError(f"Too many wrong passwords for this account or from this address. Try again in "
                                  f"{minutes} minute{'s' if minutes != 1 else ''}.", code="throttled")
        if not self.user.check_password(old_password):
            raise ValidationError(self.error_messages["password_incorrect"], code="password_incorrect")
        failure_refund(reservation)
        return old_password
