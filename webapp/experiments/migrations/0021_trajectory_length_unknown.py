"""Trajectory.length may be null: unknown, when an external trainer does not report it.

The API stored 0 for a length left out ("0 when unknown"), and the run page showed those
completions as 0 tokens long. A completion of an external run stored with length 0 and some
text cannot be 0 tokens long: its length becomes unknown. An empty completion keeps its 0.
Back: an unknown length is stored as 0 again.
"""

from django.db import migrations, models


def zero_lengths_of_reported_text_unknown(apps, schema_editor):
    Trajectory = apps.get_model("experiments", "Trajectory")
    Trajectory.objects.filter(run__kind="external", length=0).exclude(completion="").update(length=None)


def unknown_lengths_zero(apps, schema_editor):
    Trajectory = apps.get_model("experiments", "Trajectory")
    Trajectory.objects.filter(length__isnull=True).update(length=0)


class Migration(migrations.Migration):

    dependencies = [
        ("experiments", "0020_run_artifact"),
    ]

    operations = [
        migrations.AlterField(
            model_name="trajectory",
            name="length",
            field=models.PositiveIntegerField(
                blank=True, null=True,
                help_text="Completion length in tokens; null when unknown (an external trainer did not report it)."),
        ),
        migrations.RunPython(zero_lengths_of_reported_text_unknown, unknown_lengths_zero),
    ]
