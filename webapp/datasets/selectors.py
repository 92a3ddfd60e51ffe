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


def dataset_runs(*, dataset) -> QuerySet:
    """The runs trained or evaluated on the dataset, or holding it out, newest first."""
    from webapp.experiments.models import Run  # noqa: PLC0415 (experiments depends on datasets)

    return (Run.objects.filter(Q(dataset=dataset) | Q(eval_dataset=dataset)).order_by("-id")
            .only("id", "name", "status", "project_id"))
