"""Writes on rubrics, comparison tasks, assignments and labels."""

from collections.abc import Sequence

from django.db import transaction

from webapp.feedback.models import Criterion, Rubric, RubricVersion


class FeedbackError(Exception):
    """A feedback request that cannot be honoured; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


def _validate_criteria(criteria: Sequence[dict]) -> None:
    if not criteria:
        raise FeedbackError("a rubric needs at least one criterion", field="criteria")
    names = set()
    for i, c in enumerate(criteria):
        name = (c.get("name") or "").strip()
        if not name:
            raise FeedbackError(f"criterion {i + 1} has no name", field="criteria")
        if name in names:
            raise FeedbackError(f"criterion name {name!r} is used twice", field="criteria")
        names.add(name)
        if float(c.get("weight", 1.0)) <= 0:
            raise FeedbackError(f"criterion {name!r} needs a positive weight", field="criteria")
        if c.get("scale", Criterion.Scale.LIKERT_5) not in Criterion.Scale.values:
            raise FeedbackError(f"criterion {name!r} has an unknown scale; use one of {', '.join(Criterion.Scale.values)}",
                                field="criteria")


@transaction.atomic
def rubric_version_create(*, rubric: Rubric, criteria: Sequence[dict], user=None) -> RubricVersion:
    """A new version of the rubric holding exactly `criteria` (name, description, weight, scale)."""
    _validate_criteria(criteria)
    rubric = Rubric.objects.select_for_update().get(pk=rubric.pk)
    last = rubric.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = RubricVersion.objects.create(rubric=rubric, number=last + 1, created_by=user)
    Criterion.objects.bulk_create([
        Criterion(version=version, position=i, name=c["name"].strip(), description=c.get("description", ""),
                  weight=float(c.get("weight", 1.0)), scale=c.get("scale", Criterion.Scale.LIKERT_5))
        for i, c in enumerate(criteria)
    ])
    return version


@transaction.atomic
def rubric_create(*, project, name: str, criteria: Sequence[dict], description: str = "", user=None) -> Rubric:
    if Rubric.objects.filter(project=project, name=name).exists():
        raise FeedbackError(f"a rubric named {name!r} already exists", field="name")
    rubric = Rubric(project=project, name=name, description=description)
    rubric.full_clean()
    rubric.save()
    rubric_version_create(rubric=rubric, criteria=criteria, user=user)
    return rubric
