from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from webapp.accounts.forms import ApiTokenCreateForm
from webapp.accounts.models import ApiToken
from webapp.accounts.services import api_token_create, api_token_revoke


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's own view (old password, new one twice, the password validators; the session
    stays logged in): how a generated password given by a project owner is replaced."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("projects:list")

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, "Your password has been changed.")
        return response


NEW_TOKEN_KEY = "accounts:new-token"


@login_required
def token_list(request):
    """The caller's tokens. A created token is shown once, on the page the POST redirects to
    (held in the session until then), so reloading that page makes no second token."""
    form = ApiTokenCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _, raw = api_token_create(user=request.user, name=form.cleaned_data["name"])
        request.session[NEW_TOKEN_KEY] = raw
        return redirect("accounts:tokens")
    created_raw = request.session.pop(NEW_TOKEN_KEY, None) if request.method == "GET" else None
    tokens = ApiToken.objects.filter(user=request.user)
    return render(request, "accounts/tokens.html", {"form": form, "tokens": tokens, "created_raw": created_raw},
                  status=400 if request.method == "POST" else 200)


@login_required
@require_POST
def token_revoke(request, token_id: int):
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    api_token_revoke(token=token)
    return redirect("accounts:tokens")
