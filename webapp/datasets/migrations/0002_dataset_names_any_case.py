"""Dataset names unique in a project whatever their case, as project and policy names are (the
service checks it; the database holds to it too, so two imports at once cannot both pass).
Existing names that differ only in case are numbered first: "gsm8k" after "GSM8K" becomes
"gsm8k (2)", or the first number no other name of the project has. Runs point at datasets
by id, so nothing else changes."""

import django.db.models.functions.text
from django.db import migrations, models
from django.db.models import Value
from django.db.models.functions import Lower


def names_distinct_in_any_case(apps, schema_editor):
    """Compared by the database's lower(), the constraint's own: Python's str.lower differs for
    some letters ('İ'), which would leave a pair the new constraint refuses."""
    PromptDataset = apps.get_model("datasets", "PromptDataset")
    lowered = PromptDataset.objects.annotate(key=Lower("name"))

    def taken(project_id, name, *, before=None, other_than=None) -> bool:
        rows = lowered.filter(project_id=project_id, key=Lower(Value(name)))
        if before is not None:
            rows = rows.filter(pk__lt=before)
        if other_than is not None:
            rows = rows.exclude(pk=other_than)
        return rows.exists()

    for dataset in PromptDataset.objects.order_by("project_id", "pk"):
        if not taken(dataset.project_id, dataset.name, before=dataset.pk):
            continue
        n = 2
        while taken(dataset.project_id, f"{dataset.name[:110]} ({n})", other_than=dataset.pk):
            n += 1
        PromptDataset.objects.filter(pk=dataset.pk).update(name=f"{dataset.name[:110]} ({n})")


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
