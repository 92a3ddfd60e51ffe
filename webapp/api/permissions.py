"""Who may reach what over the API: every rule of access lives in this module.

Two audiences, by project role:

* **research** (owner, researcher): everything in their projects: runs, metrics,
  trajectories, datasets, prompts, checkpoints, reward models, rubrics, tasks, labels,
  exports.
* **annotation** (every role, annotators included): the project itself, its rubrics and
  comparison tasks (what there is to annotate), and labels; an annotator sees only the
  labels they wrote.
* **owners** only: changing a project's members (researchers may list them). Any signed-in
  caller may create a project, and becomes its owner.

Objects are found through querysets scoped to the projects where the caller holds one of
the roles the resource needs, so an object of another project (or one the caller's role
does not cover) answers 404, never 403: its existence is not revealed. A route under
``projects/<project_id>/`` answers 404 to non-members and 403 to members whose role does
not cover it, as the web pages do (``webapp.projects.access``).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Q
from rest_framework import exceptions, permissions

from webapp.projects.models import ALL_ROLES, RESEARCH_ROLES, Membership, Role
from webapp.projects.selectors import membership_get, project_ids_for_user

RESEARCH = RESEARCH_ROLES
ANNOTATION = ALL_ROLES
OWNERS = frozenset({Role.OWNER})


def scoped_project_ids(request, roles: Iterable[str]) -> list[int]:
    """Ids of the projects where the caller holds one of `roles`, computed once per request."""
    roles = frozenset(roles)
    cache = request.__dict__.setdefault("_steer_project_ids", {})
    if roles not in cache:
        cache[roles] = project_ids_for_user(user=request.user, roles=roles)
    return cache[roles]


def run_kind_in_scope(request, run_id: int, roles: Iterable[str]) -> str | None:
    """The run's kind when the caller holds one of ``roles`` in the run's project, else None (404).

    One statement, for the metric-ingest hot path; the same rule as ``scoped_project_ids``.
    """
    from webapp.experiments.models import Run  # noqa: PLC0415 (permissions is imported by every app's API)

    roles = sorted(set(roles))
    if not request.user.is_authenticated:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.kind FROM {Run._meta.db_table} r JOIN {Membership._meta.db_table} m "
            f"ON m.project_id = r.project_id WHERE r.id = %s AND m.user_id = %s "
            f"AND m.role IN ({', '.join(['%s'] * len(roles))})",
            [run_id, request.user.pk, *roles],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def project_membership(request, project_id: int, roles: Iterable[str]) -> Membership:
    """The caller's membership of the project: 404 for a non-member, 403 for a role outside `roles`."""
    membership = membership_get(user=request.user, project_id=project_id)
    if membership.role not in frozenset(roles):
        raise PermissionDenied("Your role in this project does not give access to this resource.")
    return membership


def require_role(request, project_id: int, roles: Iterable[str]) -> None:
    """403 for a member who can see an object but whose role may not change it."""
    if project_id not in scoped_project_ids(request, roles):
        raise PermissionDenied("Your role in this project does not allow this.")


def label_scope(request) -> Q:
    """Filter for the labels the caller may read: all in research projects, their own elsewhere."""
    research_ids = scoped_project_ids(request, RESEARCH)
    annotator_ids = scoped_project_ids(request, [Role.ANNOTATOR])
    return Q(task__project_id__in=research_ids) | Q(task__project_id__in=annotator_ids, annotator=request.user)


class ProjectRole(permissions.BasePermission):
    """For routes under ``projects/<project_id>/``: the view's ``project_roles`` must include the caller's role.

    The membership is kept on ``request.membership`` for the view. Views without a
    ``project_id`` in the URL scope their querysets with ``scoped_project_ids`` instead.
    """

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        project_id = view.kwargs.get("project_id")
        if project_id is not None:
            request.membership = project_membership(request, project_id, roles_for(request, view))
        return True


def roles_for(request, view) -> frozenset[str]:
    """The roles the view asks for this method: ``project_write_roles`` for writes, if it names them."""
    if request.method not in permissions.SAFE_METHODS and getattr(view, "project_write_roles", None):
        return view.project_write_roles
    return view.project_roles
