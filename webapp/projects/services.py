"""Writes on projects and memberships."""

from django.db import transaction
from django.utils.text import slugify

from webapp.projects.models import Membership, Project, Role


@transaction.atomic
def project_create(*, name: str, owner, description: str = "", annotation_guidelines: str = "") -> Project:
    base = slugify(name)[:100] or "project"
    slug, n = base, 2
    while Project.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    project = Project(name=name, slug=slug, description=description, annotation_guidelines=annotation_guidelines)
    project.full_clean()
    project.save()
    Membership.objects.create(project=project, user=owner, role=Role.OWNER)
    return project


@transaction.atomic
def membership_set(*, project: Project, user, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    membership.full_clean()
    return membership
