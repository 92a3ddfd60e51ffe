from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from webapp.datasets.models import Prompt, PromptDataset


def dataset_list(*, project) -> QuerySet[PromptDataset]:
    return PromptDataset.objects.filter(project=project).annotate(prompt_count=Count("prompts"))


def dataset_get(*, project, dataset_id: int) -> PromptDataset:
    """A dataset of this project, or 404 (also for another project's dataset)."""
    return get_object_or_404(PromptDataset, pk=dataset_id, project=project)


def prompt_list(*, dataset) -> QuerySet[Prompt]:
    return Prompt.objects.filter(dataset=dataset).order_by("index")


# Every character str.isspace() holds true, as a class both PostgreSQL and SQLite read: the
# engine refuses a text prompt that ``str.strip()`` leaves empty.
_SPACES = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
BLANK_TEXT = f"^[{_SPACES}]*$"


def blank_prompts(*, dataset) -> QuerySet[Prompt]:
    """Text prompts holding only whitespace, which a run's worker refuses ("prompt #i is empty");
    the importer refuses them since, but a dataset imported before may hold some."""
    return Prompt.objects.filter(dataset=dataset, messages__isnull=True, text__regex=BLANK_TEXT)


def dataset_runs(*, dataset) -> QuerySet:
    """The runs trained or evaluated on the dataset, or holding it out, newest first."""
    from webapp.experiments.models import Run  # noqa: PLC0415 (experiments depends on datasets)

    return (Run.objects.filter(Q(dataset=dataset) | Q(eval_dataset=dataset)).order_by("-id")
            .only("id", "name", "status", "project_id"))
