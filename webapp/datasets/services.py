"""Writes on prompt datasets."""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from webapp.core.deletion import first_few
from webapp.core.json_input import UnstorableText, storable_text_check
from webapp.core.line_errors import LineErrors
from webapp.core.names import name_problem, name_strip
from webapp.core.uploads import UploadText
from webapp.datasets.errors import DatasetError, DatasetInUse
from webapp.datasets.models import Prompt, PromptDataset
from webapp.datasets.parsing import MAX_ROWS, PromptRow, check_count, file_rows
from webapp.datasets.selectors import dataset_runs

# Prompts parsed, then written, this many at a time: an import holds one batch of rows, not the file's.
IMPORT_BATCH = 2000


@transaction.atomic
def dataset_create(*, project, name: str, rows: Iterable[PromptRow], user=None, description: str = "") -> PromptDataset:
    """A dataset with its prompts, all or nothing; DatasetError names the field at fault."""
    name = name_strip(name)
    dataset_name_check(project=project, name=name)
    dataset = _dataset_save(project=project, name=name, user=user, description=description)
    _prompts_store(dataset, rows, [])
    return dataset


def _dataset_save(*, project, name: str, user, description: str) -> PromptDataset:
    """The new dataset, saved (in the caller's transaction), or DatasetError naming the field."""
    try:
        storable_text_check(description)  # full_clean lets NUL through to the database (a 500)
    except UnstorableText as exc:
        raise DatasetError(f"the description {exc}", field="description") from None
    dataset = PromptDataset(project=project, name=name, description=description, created_by=user)
    try:
        dataset.full_clean(validate_constraints=False)  # the one constraint is the name, checked before
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise DatasetError("; ".join(messages), field=field if field in {"name", "description"} else None) from exc
    try:
        with transaction.atomic():
            dataset.save()
    except IntegrityError as exc:  # an import at the same time took the name
        raise DatasetError(_name_taken(name, name), field="name") from exc
    return dataset


def _prompts_store(dataset: PromptDataset | None, rows: Iterable[PromptRow], errors: list[tuple[int, str]],
                   limit: int | None = None) -> int:
    """Store ``rows`` as the dataset's prompts, IMPORT_BATCH at a time, and return how many there
    were. Once ``errors`` holds a bad line (a parser appends them as it reads), or past ``limit``
    rows, or with no dataset, the rest are only counted: the import will be refused and rolled
    back, but the parser reads on to name every bad line."""
    batch: list[Prompt] = []
    count = 0
    for row in rows:
        count += 1
        if dataset is None or errors or (limit is not None and count > limit):
            batch.clear()
            continue
        batch.append(Prompt(dataset=dataset, index=count - 1, text=row.text, messages=row.messages,
                            reference=row.reference, metadata=row.metadata))
        if len(batch) >= IMPORT_BATCH:
            Prompt.objects.bulk_create(batch)
            batch = []
    if batch and not errors:
        Prompt.objects.bulk_create(batch)
    return count


def dataset_name_check(*, project, name: str) -> None:
    """DatasetError on ``name`` if it is no name (``webapp.core.names``) or another dataset of the
    project has it in any case."""
    if problem := name_problem(name_strip(name)):
        raise DatasetError(f"the name {problem}", field="name")
    taken = PromptDataset.objects.filter(project=project, name__iexact=name).values_list("name", flat=True).first()
    if taken is not None:
        raise DatasetError(_name_taken(taken, name), field="name")


def _name_taken(taken: str, name: str) -> str:
    if taken == name:
        return f"a dataset named {name!r} already exists in this project"
    return f"a dataset named {taken!r} already exists in this project; names must differ in more than case"


def dataset_import(*, project, name: str, filename: str, content: str | UploadText, user=None, description: str = "") -> PromptDataset:
    """Parse a JSONL/CSV/Parquet file and store it; DatasetError (a field at fault, the name
    checked before the file is read) or DatasetImportError (with line numbers) changes nothing.

    The file is read, checked and written a batch of rows at a time inside one transaction, so
    an import holds one batch, not the file's rows, and a bad line anywhere rolls back the
    prompts written before it. As when the whole file was parsed first, the file's errors come
    before one of the dataset's own (its description, or a name another import took meanwhile):
    the file is then still read through, storing nothing."""
    name = name_strip(name)
    dataset_name_check(project=project, name=name)
    errors = LineErrors()
    rows, unit = file_rows(filename, content, errors)
    with transaction.atomic():
        try:
            dataset, refused = _dataset_save(project=project, name=name, user=user, description=description), None
        except DatasetError as exc:
            dataset, refused = None, exc
        count = _prompts_store(dataset, rows, errors, limit=MAX_ROWS)
        check_count(count, errors, unit)
        if refused is not None:
            raise refused
    return dataset


def dataset_delete_check(*, dataset: PromptDataset) -> None:
    """DatasetInUse if runs used the dataset: a run keeps the prompts it was trained on (its
    trajectories point at them, and a resumed run reads them again)."""
    runs = list(dataset_runs(dataset=dataset)[:5])
    if runs:
        total = dataset_runs(dataset=dataset).count()
        named = first_few([f"“{run.name}”" for run in runs], total)
        from webapp.experiments.models import TERMINAL_STATUSES  # noqa: PLC0415 (experiments depends on datasets)

        active = dataset_runs(dataset=dataset).exclude(status__in=TERMINAL_STATUSES).exists()
        then = ("cancel the ones still queued or running, then delete them once they have stopped" if active
                else "delete those runs first")
        raise DatasetInUse(f"{total} run{'s' if total != 1 else ''} used it (to train, evaluate or hold out): "
                           f"{named}; a run keeps its datasets, so {then}")


def dataset_delete(*, dataset_id: int) -> None:
    """Delete a dataset and its prompts. DatasetInUse (see ``dataset_delete_check``) changes
    nothing; PromptDataset.DoesNotExist for a missing dataset.

    The row lock orders this against new runs, which share-lock their dataset
    (``webapp.experiments.services.run_create``): a run that commits first is seen here, and
    one that comes after finds the dataset gone.
    """
    with transaction.atomic():
        dataset = PromptDataset.objects.select_for_update().get(pk=dataset_id)
        dataset_delete_check(dataset=dataset)
        dataset.delete()
