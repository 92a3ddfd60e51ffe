"""The one decorator every project page goes through: membership and role, or 404/403."""

from collections.abc import Iterable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from webapp.projects.models import ALL_ROLES, RESEARCH_ROLES, Membership, Role
from webapp.projects.selectors import membership_get


def project_member_required(roles: Iterable[str] = ALL_ROLES):
    """Resolve ``project_id`` from the URL into ``request.membership`` / ``request.project``.

    Non-members get 404; members whose role is not in ``roles`` get 403 (an annotator on a
    researcher page).
    """
    allowed = frozenset(roles)

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, project_id: int, *args, **kwargs):
            membership: Membership = membership_get(user=request.user, project_id=project_id)
            if membership.role not in allowed:
                raise PermissionDenied("Your role in this project does not give access to this page.")
            request.membership = membership
            request.project = membership.project
            return view(request, project_id, *args, **kwargs)

        return wrapper

    return decorator


research_required = project_member_required(RESEARCH_ROLES)
member_required = project_member_required(ALL_ROLES)
owner_required = project_member_required({Role.OWNER})
