from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from webapp.accounts.errors import AccountError
from webapp.accounts.selectors import user_get_by_username
from webapp.accounts.services import username_clean
from webapp.projects import services
from webapp.projects.access import member_required, owner_required
from webapp.projects.errors import CreatorNotConfirmed, ProjectError
from webapp.projects.forms import MemberAddForm, MemberRoleForm, ProjectCreateForm, ProjectSettingsForm
from webapp.projects.models import Role
from webapp.projects.selectors import membership_list, membership_of_user, memberships_for_user, project_overview


def _form_error(form, exc: ProjectError) -> None:
    """A service's refusal beside the field it names, as a sentence."""
    message = exc.message[:1].upper() + exc.message[1:]
    form.add_error(exc.field if exc.field in form.fields else None, message + ("" if message.endswith(".") else "."))


@login_required
def project_list(request):
    return render(request, "projects/list.html", {"memberships": memberships_for_user(user=request.user)})


@login_required
def project_create_page(request):
    form = ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(owner=request.user, **form.cleaned_data)
        except ProjectError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, f"Project “{project.name}” created; you are its owner. "
                                      "Add people on its Members page.")
            return redirect("projects:overview", project.id)
    return render(request, "projects/new.html", {"form": form})


@member_required
def project_overview_page(request, project_id: int):
    context = {"project": request.project, "membership": request.membership}
    if request.membership.can_research:
        context.update(project_overview(project=request.project))
    return render(request, "projects/overview.html", context)


@owner_required
@require_http_methods(["GET", "POST"])
def project_settings_page(request, project_id: int):
    """Owners change the project's name, description and annotation guidelines."""
    project = request.project
    form = ProjectSettingsForm(request.POST or None, initial={
        "name": project.name, "description": project.description,
        "annotation_guidelines": project.annotation_guidelines})
    if request.method == "POST" and form.is_valid():
        try:
            services.project_update(project=project, user=request.user, **form.cleaned_data)
        except ProjectError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, "Saved the project's settings.")
            return redirect("projects:settings", project.id)
    return render(request, "projects/settings.html", {"project": project, "membership": request.membership,
                                                      "form": form}, status=400 if form.errors else 200)


# ---------------------------------------------------------------- members (owners)

def _members_page(request, *, add_form=None, offer=None, created=None, confirm=None):
    return render(request, "projects/members.html", {
        "project": request.project, "membership": request.membership,
        "members": membership_list(project=request.project), "roles": Role.choices,
        "add_form": add_form or MemberAddForm(), "offer": offer, "created": created, "confirm": confirm,
    })


@owner_required
def member_list_page(request, project_id: int):
    return _members_page(request)


@owner_required
@require_POST
def member_add(request, project_id: int):
    """Add an existing account; for a username without one, offer to create it (a second POST)."""
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        return _members_page(request, add_form=form)
    username, role = form.cleaned_data["username"], form.cleaned_data["role"]
    user = user_get_by_username(username=username)
    if user is None:
        try:
            username = username_clean(username)
        except AccountError as exc:
            form.add_error("username", f"No account is named {username!r}, and it cannot be a new one: {exc.message}")
            return _members_page(request, add_form=form)
        return _members_page(request, add_form=form, offer={"username": username, "role": role,
                                                            "role_label": Role(role).label})
    try:
        services.membership_add(project=request.project, user=user, role=role, added_by=request.user,
                                account_created_by=form.cleaned_data["account_created_by"])
    except CreatorNotConfirmed as exc:
        return _members_page(request, confirm={
            "username": user.get_username(), "role": role, "role_label": Role(role).label,
            "creator": exc.creator, "message": exc.message[:1].upper() + exc.message[1:] + "."})
    except ProjectError as exc:
        _form_error(form, exc)
        return _members_page(request, add_form=form)
    messages.success(request, f"Added {user.get_username()} as {Role(role).label.lower()}.")
    return redirect("projects:members", request.project.id)


@sensitive_variables("password")
@owner_required
@require_POST
def member_account_create(request, project_id: int):
    """Create the account offered by ``member_add`` and show its password, in this response only.

    No redirect: a redirect would carry the password through the session or the URL. The page
    is not cached (``no-store``) and htmx keeps it out of its history snapshots.
    """
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        return _members_page(request, add_form=form)
    try:
        membership, password = services.member_account_create(
            project=request.project, username=form.cleaned_data["username"], role=form.cleaned_data["role"],
            created_by=request.user)
    except ProjectError as exc:
        _form_error(form, exc)
        return _members_page(request, add_form=form)
    response = _members_page(request, created={"membership": membership, "password": password})
    add_never_cache_headers(response)
    return response


def _after_own_change(request):
    """Where an owner who changed their own membership lands: the members page is no longer theirs."""
    still_owner = request.project.memberships.filter(user=request.user, role=Role.OWNER).exists()
    if still_owner:
        return redirect("projects:members", request.project.id)
    if request.project.memberships.filter(user=request.user).exists():
        return redirect("projects:overview", request.project.id)
    return redirect("projects:list")


@owner_required
@require_POST
def member_role_change(request, project_id: int, user_id: int):
    membership = membership_of_user(project=request.project, user_id=user_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles: " + ", ".join(label for _, label in Role.choices) + ".")
        return redirect("projects:members", request.project.id)
    try:
        membership = services.membership_role_set(membership=membership, role=form.cleaned_data["role"])
    except ProjectError as exc:
        messages.error(request, f"Nothing was changed: {exc.message}.")
        return redirect("projects:members", request.project.id)
    messages.success(request, f"{membership.user.get_username()} is now {membership.get_role_display().lower()}.")
    return _after_own_change(request)


@owner_required
@require_POST
def member_remove(request, project_id: int, user_id: int):
    membership = membership_of_user(project=request.project, user_id=user_id)
    try:
        services.membership_remove(membership=membership)
    except ProjectError as exc:
        messages.error(request, f"Nothing was changed: {exc.message}.")
        return redirect("projects:members", request.project.id)
    messages.success(request, f"Removed {membership.user.get_username()} from {request.project.name}.")
    return _after_own_change(request)


@member_required
@require_POST
def project_leave(request, project_id: int):
    """Any member leaves the project (their labels stay); its only owner cannot."""
    membership = membership_of_user(project=request.project, user_id=request.user.id)
    try:
        services.membership_remove(membership=membership)
    except ProjectError as exc:
        messages.error(request, f"You are still a member: {exc.message}.")
        return redirect("projects:overview", request.project.id)
    messages.success(request, f"You left {request.project.name}.")
    return redirect("projects:list")
