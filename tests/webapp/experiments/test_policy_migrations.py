"""Migrations 0006-0007: checkpoint policies, names unique whatever their case, and back."""

import pytest

from tests.webapp.experiments.test_metric_migrations import latest, migrate

pytestmark = pytest.mark.django_db(transaction=True)


def test_names_differing_in_case_are_numbered_and_checkpoint_policies_go_back_as_folders():
    old = migrate([("experiments", "0006_policy_checkpoint_source")])
    Project, Run = old.get_model("projects", "Project"), old.get_model("experiments", "Run")
    Checkpoint, PolicyModel = old.get_model("experiments", "Checkpoint"), old.get_model("experiments", "PolicyModel")
    project, other = Project.objects.create(name="p", slug="p"), Project.objects.create(name="q", slug="q")
    run = Run.objects.create(project=project, name="r", kind="policy", status="succeeded")
    checkpoint = Checkpoint.objects.create(run=run, step=3, path="/ckpt/run-1/checkpoints/step-3")
    PolicyModel.objects.create(project=project, name="Base", source="tiny")
    PolicyModel.objects.create(project=project, name="base", source="tiny")
    PolicyModel.objects.create(project=project, name="base (2)", source="tiny")
    PolicyModel.objects.create(project=other, name="BASE", source="tiny")
    PolicyModel.objects.create(project=project, name="from r", source="checkpoint", checkpoint=checkpoint)

    new = migrate(latest())
    names = sorted(new.get_model("experiments", "PolicyModel").objects.filter(project_id=project.id)
                   .values_list("name", flat=True))
    assert names == ["Base", "base (2)", "base (3)", "from r"]

    back = migrate([("experiments", "0005_rollup_fanout_16")])
    policy = back.get_model("experiments", "PolicyModel").objects.get(name="from r")
    assert (policy.source, policy.reference) == ("path", "/ckpt/run-1/checkpoints/step-3")
    migrate(latest())
