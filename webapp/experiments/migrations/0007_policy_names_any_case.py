"""Policy names unique in a project whatever their case (the service checked it; now the
database does too, so two registrations at once cannot both pass), and, going back before 0006,
checkpoint policies become the local-folder policies they are (0006's reverse drops the
checkpoint link, and the older code would read an unknown source as a tiny model)."""

import django.db.models.functions.text
from django.conf import settings
from django.db import migrations, models


def names_distinct_in_any_case(apps, schema_editor):
    """Number the later of two names that differ only in case: "base" after "Base" becomes
    "base (2)", or the first number no other name of the project has."""
    PolicyModel = apps.get_model("experiments", "PolicyModel")
    policies = list(PolicyModel.objects.order_by("project_id", "pk"))
    taken: dict[int, set[str]] = {}
    for policy in policies:
        taken.setdefault(policy.project_id, set()).add(policy.name.lower())
    kept: dict[int, set[str]] = {}
    for policy in policies:
        seen = kept.setdefault(policy.project_id, set())
        if policy.name.lower() not in seen:
            seen.add(policy.name.lower())
            continue
        n = 2
        while f"{policy.name[:110]} ({n})".lower() in taken[policy.project_id]:
            n += 1
        name = f"{policy.name[:110]} ({n})"
        PolicyModel.objects.filter(pk=policy.pk).update(name=name)
        taken[policy.project_id].add(name.lower())
        seen.add(name.lower())


def checkpoint_policies_to_folders(apps, schema_editor):
    PolicyModel = apps.get_model("experiments", "PolicyModel")
    for policy in PolicyModel.objects.filter(source="checkpoint").select_related("checkpoint"):
        PolicyModel.objects.filter(pk=policy.pk).update(source="path", reference=policy.checkpoint.path,
                                                        checkpoint=None)


class Migration(migrations.Migration):

    dependencies = [
        ('experiments', '0006_policy_checkpoint_source'),
        ('projects', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, checkpoint_policies_to_folders),
        migrations.RunPython(names_distinct_in_any_case, migrations.RunPython.noop),
        migrations.RemoveConstraint(
            model_name='policymodel',
            name='policy_unique_name_per_project',
        ),
        migrations.AddConstraint(
            model_name='policymodel',
            constraint=models.UniqueConstraint(models.F('project'), django.db.models.functions.text.Lower('name'), name='policy_unique_name_per_project_any_case'),
        ),
    ]
