"""Dataset names unique in a project whatever their case, as project and policy names are (the
service checks it; the database holds to it too, so two imports at once cannot both pass).
Existing names that differ only in case are numbered first: "gsm8k" after "GSM8K" becomes
"gsm8k (2)", or the first number no other name of the project has. Runs point at datasets
by id, so nothing else changes."""

import django.db.models.functions.text
from django.db import migrations, models


def names_distinct_in_any_case(apps, schema_editor):
    PromptDataset = apps.get_model("datasets", "PromptDataset")
    datasets = list(PromptDataset.objects.order_by("project_id", "pk"))
    taken: dict[int, set[str]] = {}
    for dataset in datasets:
        taken.setdefault(dataset.project_id, set()).add(dataset.name.lower())
    kept: dict[int, set[str]] = {}
    for dataset in datasets:
        seen = kept.setdefault(dataset.project_id, set())
        if dataset.name.lower() not in seen:
            seen.add(dataset.name.lower())
            continue
        n = 2
        while f"{dataset.name[:110]} ({n})".lower() in taken[dataset.project_id]:
            n += 1
        name = f"{dataset.name[:110]} ({n})"
        PromptDataset.objects.filter(pk=dataset.pk).update(name=name)
        taken[dataset.project_id].add(name.lower())
        seen.add(name.lower())


class Migration(migrations.Migration):

    dependencies = [
        ('datasets', '0001_initial'),
        ('projects', '0001_initial'),
    ]

    operations = [
        migrations.RunPython(names_distinct_in_any_case, migrations.RunPython.noop),
        migrations.RemoveConstraint(
            model_name='promptdataset',
            name='dataset_unique_name_per_project',
        ),
        migrations.AddConstraint(
            model_name='promptdataset',
            constraint=models.UniqueConstraint(models.F('project'), django.db.models.functions.text.Lower('name'), name='dataset_unique_name_per_project_any_case'),
        ),
    ]
