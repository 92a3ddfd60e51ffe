from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from webapp.accounts.forms import ApiTokenCreateForm, ThrottledPasswordChangeForm
from webapp.accounts.models import ApiToken
from webapp.accounts.services import api_token_create, api_token_revoke


class LoginView(auth_views.LoginView):
    """Django's login. Failed attempts are limited per client address and per username by the
    password backend (``webapp.accounts.backends``); over either limit the page answers 429,
    and the password was not checked."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form):
        wait = getattr(self.request, "steer_login_wait", 0)
        if not wait:
            return super().form_invalid(form)
        # An unbound form: the refusal is the only message, not "enter a correct password".
        unbound = self.form_class(self.request, initial={"username": form.data.get("username", "")})
        minutes = -(-wait // 60)
        context = self.get_context_data(form=unbound, throttled=(
            f"Too many failed log-ins from this address or for this username. Try again in "
            f"{minutes} minute{'s' if minutes != 1 else ''}."))
        return self.render_to_response(context, status=429)


class LogoutView(auth_views.LogoutView):
    pass


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's own view (old password, new one twice, the password validators; the session
    stays logged in, Django ends the others): how a generated password given by a project owner
    is replaced. The API tokens are revoked with it unless the user unticks the box."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("projects:list")
    form_class = ThrottledPasswordChangeForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}

    def form_valid(self, form):
        response = super().form_valid(form)
        revoked = form.api_tokens_revoked
        if revoked:
            tokens = f"{revoked} API token{'s' if revoked != 1 else ''}"
            messages.success(self.request, f"Your password has been changed and {tokens} revoked; "
                                           "create new ones on the API tokens page.")
        else:
            messages.success(self.request, "Your password has been changed.")
        return response


USED_SUBMISSIONS = "accounts:token-submissions"  # keys of the forms that made a token (no secret)


@login_required
def token_list(request):
    """The caller's tokens. A created token is shown once, in the answer to the POST (never
    cached, never kept anywhere but as a hash); the same form posted again, as a reload of that
    page does, makes no second token."""
    form = ApiTokenCreateForm(request.POST or None)
    created_raw = None
    if request.method == "POST" and form.is_valid():
        used = request.session.get(USED_SUBMISSIONS, [])
        key = form.cleaned_data["submission_key"]
        if key in used:
            messages.info(request, "That token was created already and shown once; create another if you need one.")
            return redirect("accounts:tokens")
        _, created_raw = api_token_create(user=request.user, name=form.cleaned_data["name"],
                                          expires_in_days=form.cleaned_data["expires_in_days"])
        request.session[USED_SUBMISSIONS] = [*used, key][-20:]
        form = ApiTokenCreateForm()
    tokens = ApiToken.objects.filter(user=request.user)
    invalid = request.method == "POST" and created_raw is None
    response = render(request, "accounts/tokens.html", {"form": form, "tokens": tokens, "created_raw": created_raw},
                      status=400 if invalid else 200)
    if created_raw:
        add_never_cache_headers(response)
    return response


@login_required
@require_POST
def token_revoke(request, token_id: int):
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    api_token_revoke(token=token)
    return redirect("accounts:tokens")
