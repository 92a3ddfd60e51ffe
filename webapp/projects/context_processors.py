from webapp.projects.selectors import memberships_for_user


def memberships(request):
    """The caller's projects, for the navigation bar."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_memberships": []}
    return {"nav_memberships": memberships_for_user(user=user)}
