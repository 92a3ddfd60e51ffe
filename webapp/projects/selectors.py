"""Reads of projects and memberships; every project lookup is scoped to the caller."""

from collections.abc import Iterable

from django.db.models import Case, Count, IntegerField, QuerySet, Value, When
from django.http import Http404

from webapp.projects.models import ALL_ROLES, Membership, Project, Role


def project_list_for_user(*, user) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user).distinct()


def membership_get(*, user, project_id: int, roles: Iterable[str] = ALL_ROLES) -> Membership:
    """The caller's membership of the project, or Http404 if they have none with one of `roles`.

    A project the caller does not belong to answers 404 (not 403), so its existence is not
    revealed.
    """
    if not user.is_authenticated:
        raise Http404("No such project.")
    membership = (
        Membership.objects.select_related("project")
        .filter(user=user, project_id=project_id, role__in=list(roles))
        .first()
    )
    if membership is None:
        raise Http404("No such project.")
    return membership


def project_ids_for_user(*, user, roles: Iterable[str] = ALL_ROLES) -> list[int]:
    if not user.is_authenticated:
        return []
    return list(
        Membership.objects.filter(user=user, role__in=list(roles)).values_list("project_id", flat=True)
    )


def memberships_for_user(*, user) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("project").order_by("project__name")


def membership_list(*, project: Project) -> QuerySet[Membership]:
    """The project's members with their accounts: owners first, then researchers, annotators; by name."""
    rank = Case(*[When(role=role, then=Value(i)) for i, role in enumerate(Role)], output_field=IntegerField())
    return (Membership.objects.filter(project=project).select_related("user")
            .annotate(role_rank=rank).order_by("role_rank", "user__username"))


def membership_of_user(*, project: Project, user_id: int) -> Membership:
    """The membership of the account ``user_id`` in ``project``, or Http404 (another project's
    members are not found through this one)."""
    membership = Membership.objects.select_related("user", "project").filter(project=project, user_id=user_id).first()
    if membership is None:
        raise Http404("No such member.")
    return membership


def project_overview(*, project: Project) -> dict:
    """Counts and recent runs for a project's overview page (researcher view)."""
    from webapp.experiments.models import Run

    runs = Run.objects.filter(project=project)
    status_counts = dict(runs.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {
        "recent_runs": runs.order_by("-created_at")[:10],
        "run_status_counts": status_counts,
        "dataset_count": project.datasets.count(),
        "policy_count": project.policies.count(),
        "rubric_count": project.rubrics.count(),
        "task_count": project.comparison_tasks.count(),
        "reward_model_count": project.reward_models.count(),
        "member_count": project.memberships.count(),
    }
