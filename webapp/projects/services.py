"""Writes on projects and memberships.

Every membership write locks its project's row first, so the writes of one project run one at
a time and the rule "a project always has an owner" cannot be broken by two owners demoting
each other at the same moment.
"""

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils.text import slugify
from django.views.decorators.debug import sensitive_variables

from webapp.accounts.errors import AccountError
from webapp.accounts.selectors import account_origin
from webapp.accounts.services import user_create_with_generated_password
from webapp.core.json_input import storable_text_check
from webapp.core.names import name_problem, name_strip
from webapp.projects.errors import CreatorNotConfirmed, LastOwnerError, ProjectError
from webapp.projects.models import Membership, Project, Role

NAME_MAX_LENGTH = Project._meta.get_field("name").max_length
SLUG_ATTEMPTS = 5


# ---------------------------------------------------------------- projects

def _text_check(value: str, field: str) -> None:
    try:
        storable_text_check(value)
    except ValueError as exc:
        raise ProjectError(str(exc), field=field) from None


def _name_clean(name: str) -> str:
    name = name_strip(name)
    if not name:
        raise ProjectError("a project needs a name", field="name")
    if problem := name_problem(name):
        raise ProjectError(f"the name {problem}", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise ProjectError(f"a project name has at most {NAME_MAX_LENGTH} characters (this one has {len(name)})",
                           field="name")
    _text_check(name, "name")
    if not any(ch.isalnum() for ch in name):
        raise ProjectError("a project name needs at least one letter or digit", field="name")
    return name


def _free_slug(name: str) -> str:
    """The name's slug, numbered (`arithmetic-2`) when another project has it already."""
    base = slugify(name)[:100] or "project"
    slug, n = base, 2
    while Project.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def project_create(*, name: str, owner, description: str = "", annotation_guidelines: str = "") -> Project:
    """A new project whose first member is ``owner``, as its owner.

    ProjectError naming the field for a name that is empty, too long, without a letter or
    digit, or already the name of one of the owner's projects (names are what the navigation
    shows). The slug comes from the name and is made unique with a number.
    """
    name = _name_clean(name)
    _text_check(description, "description")
    _text_check(annotation_guidelines, "annotation_guidelines")
    # One creation at a time per owner, so a double-submitted form cannot pass the name check twice.
    get_user_model().objects.select_for_update().filter(pk=owner.pk).exists()
    if Project.objects.filter(memberships__user=owner, name__iexact=name).exists():
        raise ProjectError(f"you already have a project named {name!r}", field="name")
    project = Project(name=name, description=description, annotation_guidelines=annotation_guidelines)
    for attempt in range(SLUG_ATTEMPTS):
        project.slug = _free_slug(name)
        project.full_clean()
        try:
            with transaction.atomic():
                project.save()
            break
        except IntegrityError:  # another creation took the slug between the check and the insert
            project.pk = None
            if attempt == SLUG_ATTEMPTS - 1:
                raise ProjectError("many projects with this name are being created at once; try again",
                                   field="name") from None
    Membership.objects.create(project=project, user=owner, role=Role.OWNER)
    return project


@transaction.atomic
def project_update(*, project: Project, user, name: str | None = None, description: str | None = None,
                   annotation_guidelines: str | None = None) -> Project:
    """Change the project's name, description or annotation guidelines (None leaves a field as
    it is); the slug stays, so links keep working.

    ProjectError naming the field, as for ``project_create``; a new name must differ (ignoring
    case) from the names of ``user``'s other projects. Changed guidelines show on the next task
    an annotator opens; labels already given keep no copy of them.
    """
    # The caller's row first, as project_create takes it: a creation and a rename to one name
    # at once cannot both pass the name check.
    get_user_model().objects.select_for_update().filter(pk=user.pk).exists()
    _project_lock(project)
    project = Project.objects.get(pk=project.pk)
    if name is not None:
        name = _name_clean(name)
        if name.casefold() != project.name.casefold() and Project.objects.filter(
                memberships__user=user, name__iexact=name).exclude(pk=project.pk).exists():
            raise ProjectError(f"you already have a project named {name!r}", field="name")
        project.name = name
    for field, value in (("description", description), ("annotation_guidelines", annotation_guidelines)):
        if value is not None:
            _text_check(value, field)
            setattr(project, field, value)
    project.save(update_fields=["name", "description", "annotation_guidelines"])
    return project


# ---------------------------------------------------------------- memberships

def _role_clean(role: str) -> str:
    if role not in Role.values:
        raise ProjectError(f"the role must be one of {', '.join(Role.values)}", field="role")
    return role


def _project_lock(project: Project) -> None:
    Project.objects.select_for_update().filter(pk=project.pk).exists()


def _membership_reread(membership: Membership) -> Membership:
    """The membership as stored now (call under the project lock); 404 if it was removed meanwhile."""
    current = Membership.objects.select_related("user", "project").filter(pk=membership.pk).first()
    if current is None:
        raise Http404("No such member.")
    return current


def _is_last_owner(membership: Membership) -> bool:
    """Whether no other owner could manage the project: a deactivated account cannot log in."""
    return membership.role == Role.OWNER and not Membership.objects.filter(
        project_id=membership.project_id, role=Role.OWNER, user__is_active=True).exclude(pk=membership.pk).exists()


def _creator_check(*, user, added_by, account_created_by: str) -> None:
    """CreatorNotConfirmed if another user created ``user``'s account with a generated password
    (so may still know it) and ``account_created_by`` does not name them. An account its adder
    created, or one its holder or an administrator created, needs no confirmation."""
    origin = account_origin(user=user)
    if origin is None or origin.created_by_id == added_by.pk:
        return
    if account_created_by.strip().casefold() == origin.created_by_username.casefold():
        return
    where = f" on the Members page of their project {origin.project_name!r}" if origin.project_name else ""
    raise CreatorNotConfirmed(
        f"the account {user.get_username()!r} was created by {origin.created_by_username}{where} on "
        f"{origin.created_at:%Y-%m-%d}, who saw its generated password and may still know it: add it only if "
        f"you know it is the person you mean", creator=origin.created_by_username)


@transaction.atomic
def membership_add(*, project: Project, user, role: str, added_by=None, account_created_by: str = "") -> Membership:
    """Add ``user`` to the project with ``role``. ProjectError if they are a member already (a
    role is changed with ``membership_role_set``) or their account is deactivated.

    ``added_by`` is the owner adding them (None: an administrator's command). If someone else
    created the account with a generated password, CreatorNotConfirmed unless
    ``account_created_by`` names that creator.
    """
    role = _role_clean(role)
    _project_lock(project)
    if not user.is_active:
        raise ProjectError(f"the account {user.get_username()!r} is deactivated", field="username")
    if Membership.objects.filter(project=project, user=user).exists():
        raise ProjectError(f"{user.get_username()} is already a member; change their role instead", field="username")
    if added_by is not None:
        _creator_check(user=user, added_by=added_by, account_created_by=account_created_by)
    membership = Membership(project=project, user=user, role=role)
    membership.full_clean()
    membership.save()
    return membership


@sensitive_variables("password")
@transaction.atomic
def member_account_create(*, project: Project, username: str, role: str, created_by=None) -> tuple[Membership, str]:
    """A new account named ``username`` with a generated password, added to the project with
    ``role``: both or neither. ``created_by``, the owner who sees the password, is recorded.

    Returns the membership and the password. The password exists nowhere else (only its hash
    is stored): show it once, to the owner who passes it on, and do not log it.
    """
    role = _role_clean(role)
    try:
        user, password = user_create_with_generated_password(username=username, created_by=created_by,
                                                              project_name=project.name)
    except AccountError as exc:
        raise ProjectError(exc.message, field="username") from None
    return membership_add(project=project, user=user, role=role), password


@transaction.atomic
def membership_role_set(*, membership: Membership, role: str) -> Membership:
    """Give the member ``role``. LastOwnerError if they are the project's only owner and ``role``
    is not owner."""
    role = _role_clean(role)
    _project_lock(membership.project)
    membership = _membership_reread(membership)
    if role != Role.OWNER and _is_last_owner(membership):
        raise LastOwnerError(f"{membership.user.get_username()} is the project's only owner with an active account; "
                             "make another member an owner first", field="role")
    if membership.role != role:
        membership.role = role
        membership.full_clean()
        membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    """Remove the member from the project (their account stays); the tasks they held go back to
    the queue. LastOwnerError if they are its only owner."""
    _project_lock(membership.project)
    membership = _membership_reread(membership)
    if _is_last_owner(membership):
        raise LastOwnerError(f"{membership.user.get_username()} is the project's only owner with an active account "
                             "and cannot be removed; "
                             "make another member an owner first")
    membership.delete()
    from webapp.feedback.labelling import assignments_release  # noqa: PLC0415 (feedback builds on projects)

    assignments_release(project=membership.project, annotator=membership.user)
