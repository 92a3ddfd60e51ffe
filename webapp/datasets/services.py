"""Writes on prompt datasets."""

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import transaction

from webapp.datasets.errors import DatasetImportError
from webapp.datasets.models import Prompt, PromptDataset
from webapp.datasets.parsing import PromptRow, parse_file


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
