from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from webapp.projects.access import member_required
from webapp.projects.selectors import memberships_for_user, project_overview


@login_required
def project_list(request):
    return render(request, "projects/list.html", {"memberships": memberships_for_user(user=request.user)})


@member_required
def project_overview_page(request, project_id: int):
    context = {"project": request.project, "membership": request.membership}
    if request.membership.can_research:
        context.update(project_overview(project=request.project))
    return render(request, "projects/overview.html", context)
