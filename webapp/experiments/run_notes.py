"""A run's notes: its name, a Markdown description and tags, set by a researcher after launch
(MLflow's run name, description and tags), on the run page and over the API."""

from __future__ import annotations

from django.db import transaction

from webapp.core.json_input import UnstorableText, storable_text_check
from webapp.core.names import name_problem, name_strip
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run, RunTag

MAX_TAGS = 20
MAX_TAG_CHARS = 40
MAX_DESCRIPTION_CHARS = 20_000


def tags_clean(tags) -> list[str]:
    """The tags as they are stored: each stripped, at most ``MAX_TAG_CHARS`` characters, one line
    without a comma, the first of those that differ only in case kept; RunError names what is wrong."""
    if not isinstance(tags, list | tuple):
        raise RunError("tags must be a list of short texts", field="tags")
    out: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(tags):
        if not isinstance(raw, str):
            raise RunError(f"tag {i + 1} is not a text", field="tags")
        tag = name_strip(raw)
        if not tag:
            continue
        if len(tag) > MAX_TAG_CHARS:
            raise RunError(f"the tag {tag[:MAX_TAG_CHARS]!r}… is longer than {MAX_TAG_CHARS} characters", field="tags")
        if "," in tag:
            raise RunError(f"the tag {tag!r} holds a comma, which separates tags", field="tags")
        if problem := name_problem(tag):
            raise RunError(f"the tag {tag!r} {problem}", field="tags")
        if tag.casefold() not in seen:
            seen.add(tag.casefold())
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise RunError(f"{len(out)} tags; a run takes at most {MAX_TAGS}", field="tags")
    return out


def run_notes_update(*, run_id: int, project, name: str | None = None, description: str | None = None,
                     tags: list[str] | None = None) -> Run:
    """Set the run's name, description and/or tags (None leaves one as it is); all or nothing.
    Run.DoesNotExist for a run of another project or none."""
    changes: dict = {}
    if name is not None:
        name = name_strip(name)
        if not name:
            raise RunError("a run needs a name", field="name")
        if len(name) > 200:
            raise RunError("the name is longer than 200 characters", field="name")
        if problem := name_problem(name):
            raise RunError(f"the name {problem}", field="name")
        changes["name"] = name
    if description is not None:
        if len(description) > MAX_DESCRIPTION_CHARS:
            raise RunError(f"the description is longer than {MAX_DESCRIPTION_CHARS} characters", field="description")
        try:
            storable_text_check(description)
        except UnstorableText as exc:
            raise RunError(f"the description {exc}", field="description") from None
        changes["description"] = description.strip()
    cleaned = tags_clean(tags) if tags is not None else None
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id, project=project)
        for field, value in changes.items():
            setattr(run, field, value)
        if changes:
            run.save(update_fields=list(changes))
        if cleaned is not None:
            RunTag.objects.filter(run=run).delete()
            RunTag.objects.bulk_create([RunTag(run=run, name=tag) for tag in cleaned])
    return run
