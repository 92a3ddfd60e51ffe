"""Writes on prompt datasets."""

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import transaction

from webapp.core.deletion import first_few
from webapp.datasets.errors import DatasetImportError, DatasetInUse
from webapp.datasets.models import Prompt, PromptDataset
from webapp.datasets.parsing import PromptRow, parse_file
from webapp.datasets.selectors import dataset_runs


@transaction.atomic
def dataset_create(*, project, name: str, rows: Sequence[PromptRow], user=None, description: str = "") -> PromptDataset:
    """A dataset with its prompts, all or nothing."""
    if PromptDataset.objects.filter(project=project, name=name).exists():
        raise DatasetImportError([(0, f"a dataset named {name!r} already exists in this project")])
    dataset = PromptDataset(project=project, name=name, description=description, created_by=user)
    try:
        dataset.full_clean()
    except ValidationError as exc:
        raise DatasetImportError([(0, "; ".join(exc.messages))]) from exc
    dataset.save()
    Prompt.objects.bulk_create(
        [
            Prompt(dataset=dataset, index=i, text=row.text, messages=row.messages,
                   reference=row.reference, metadata=row.metadata)
            for i, row in enumerate(rows)
        ],
        batch_size=2000,
    )
    return dataset


def dataset_import(*, project, name: str, filename: str, content: str, user=None, description: str = "") -> PromptDataset:
    """Parse a JSONL/CSV file and store it; DatasetImportError (with line numbers) changes nothing."""
    rows = parse_file(filename, content)
    return dataset_create(project=project, name=name, rows=rows, user=user, description=description)


def dataset_delete_check(*, dataset: PromptDataset) -> None:
    """DatasetInUse if runs used the dataset: a run keeps the prompts it was trained on (its
    trajectories point at them, and a resumed run reads them again)."""
    runs = list(dataset_runs(dataset=dataset)[:5])
    if runs:
        total = dataset_runs(dataset=dataset).count()
        named = first_few([f"“{run.name}”" for run in runs], total)
        raise DatasetInUse(f"{total} run{'s' if total != 1 else ''} used it (to train, evaluate or hold out): "
                           f"{named}; a run keeps its datasets, so delete those runs first")


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
