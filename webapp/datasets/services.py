"""Writes on prompt datasets."""

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from webapp.core.deletion import first_few
from webapp.core.names import name_problem, name_strip
from webapp.core.uploads import UploadText
from webapp.datasets.errors import DatasetError, DatasetInUse
from webapp.datasets.models import Prompt, PromptDataset
from webapp.datasets.parsing import PromptRow, parse_file
from webapp.datasets.selectors import dataset_runs


@transaction.atomic
def dataset_create(*, project, name: str, rows: Sequence[PromptRow], user=None, description: str = "") -> PromptDataset:
    """A dataset with its prompts, all or nothing; DatasetError names the field at fault."""
    name = name_strip(name)
    dataset_name_check(project=project, name=name)
    dataset = PromptDataset(project=project, name=name, description=description, created_by=user)
    try:
        dataset.full_clean(validate_constraints=False)  # the one constraint is the name, checked above
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise DatasetError("; ".join(messages), field=field if field in {"name", "description"} else None) from exc
    try:
        with transaction.atomic():
            dataset.save()
    except IntegrityError as exc:  # an import at the same time took the name
        raise DatasetError(_name_taken(name, name), field="name") from exc
    Prompt.objects.bulk_create(
        [
            Prompt(dataset=dataset, index=i, text=row.text, messages=row.messages,
                   reference=row.reference, metadata=row.metadata)
            for i, row in enumerate(rows)
        ],
        batch_size=2000,
    )
    return dataset


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
    """Parse a JSONL/CSV file and store it; DatasetError (a field at fault, the name checked
    before the file is read) or DatasetImportError (with line numbers) changes nothing."""
    name = name_strip(name)
    dataset_name_check(project=project, name=name)
    rows = parse_file(filename, content)
    return dataset_create(project=project, name=name, rows=rows, user=user, description=description)


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
