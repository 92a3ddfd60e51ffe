"""Tasks keep their source run's name, so that a task whose run was deleted does not read as an import."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def names_from_runs(apps, schema_editor):
    ComparisonTask = apps.get_model("feedback", "ComparisonTask")
    Run = apps.get_model("experiments", "Run")
    ComparisonTask.objects.filter(source_run__isnull=False).update(
        source_run_name=Subquery(Run.objects.filter(pk=OuterRef("source_run_id")).values("name")[:1]))


class Migration(migrations.Migration):

    dependencies = [
        ('feedback', '0002_assignment_indexes'),
        ('experiments', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='comparisontask',
            name='source_run_name',
            field=models.CharField(blank=True, help_text="The source run's name, kept when the run is deleted; empty for imports.", max_length=200),
        ),
        migrations.RunPython(names_from_runs, migrations.RunPython.noop),
    ]
