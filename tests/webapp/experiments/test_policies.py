"""Policies: registering one (built-in, tiny, a finished run's checkpoint, a staff-only local
folder), launching from it, deleting it, on the pages and over the API."""

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from tests.factories import PASSWORD, make_dataset, make_policy, make_project, make_run, make_user
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments.errors import PolicyError, PolicyInUse, RunError
from webapp.experiments.local_folders import resolve_local_folders
from webapp.experiments.models import Checkpoint, PolicyModel, Run, RunKind, RunStatus
from webapp.experiments.policies import policy_create, policy_delete
from webapp.experiments.services import run_delete, run_launch

pytestmark = pytest.mark.django_db


def checkpoint_of(project, status=RunStatus.SUCCEEDED, kind=RunKind.POLICY, step=8, name="sft"):
    run = make_run(project, status=status, kind=kind, name=name)
    return Checkpoint.objects.create(run=run, step=step, path=f"/ckpt/run-{run.id}/checkpoints/step-{step}")


# ---------------------------------------------------------------- the service

def test_a_builtin_and_a_tiny_policy_give_their_engine_specs():
    project = make_project()
    smol = policy_create(project=project, user=None, name="  SmolLM2 ", source="builtin",
                         reference="smollm2-135m-instruct")
    tiny = policy_create(project=project, user=None, name="tiny", source="tiny")
    assert smol.name == "SmolLM2"
    assert smol.engine_spec() == {"source": "builtin", "name": "smollm2-135m-instruct"}
    assert tiny.engine_spec() == {"source": "tiny"}


def test_a_finished_runs_checkpoint_becomes_a_path_policy_on_its_folder():
    project = make_project()
    checkpoint = checkpoint_of(project)
    policy = policy_create(project=project, user=None, name="from sft", source="checkpoint",
                           checkpoint_id=checkpoint.pk)
    assert policy.checkpoint == checkpoint and policy.reference == checkpoint.path
    assert policy.engine_spec() == {"source": "path", "path": checkpoint.path}


@pytest.mark.parametrize("kwargs, field, words", [
    ({"name": "", "source": "tiny"}, "name", "needs a name"),
    ({"name": "x" * 121, "source": "tiny"}, "name", "at most 120"),
    ({"name": "a\x00b", "source": "tiny"}, "name", "NUL"),
    ({"name": "p", "source": "hub"}, "source", "unknown source 'hub'"),
    ({"name": "p", "source": "builtin", "reference": "llama-70b"}, "reference", "unknown built-in model 'llama-70b'"),
    ({"name": "p", "source": "tiny", "reference": "x"}, "reference", "takes no reference"),
    ({"name": "p", "source": "builtin", "reference": "smollm2-135m-instruct", "checkpoint_id": 1},
     "checkpoint", "only a policy whose source is 'checkpoint'"),
    ({"name": "p", "source": "checkpoint"}, "checkpoint", "choose the checkpoint"),
    ({"name": "p", "source": "checkpoint", "checkpoint_id": 10**12}, "checkpoint", "no checkpoint"),
    ({"name": "p", "source": "path", "reference": "/models/x"}, "source", "only staff"),
])
def test_bad_input_names_its_field_and_stores_nothing(kwargs, field, words):
    project = make_project()
    with pytest.raises(PolicyError) as info:
        policy_create(project=project, user=make_user(), **kwargs)
    assert info.value.field == field and words in info.value.message
    assert not PolicyModel.objects.exists()


def test_a_checkpoint_must_be_of_a_finished_policy_run_of_this_project():
    project = make_project()
    running = checkpoint_of(project, status=RunStatus.RUNNING, name="live")
    reward_model = checkpoint_of(project, kind=RunKind.REWARD_MODEL)
    theirs = checkpoint_of(make_project())
    for checkpoint, words in [(running, "“live” is running; its checkpoints can be used once it has finished"),
                              (reward_model, "belongs to a Reward-model training run"),
                              (theirs, f"no checkpoint {theirs.pk} in this project")]:
        with pytest.raises(PolicyError) as info:
            policy_create(project=project, user=None, name="p", source="checkpoint", checkpoint_id=checkpoint.pk)
        assert info.value.field == "checkpoint" and words in info.value.message
    assert not PolicyModel.objects.exists()


def test_names_are_unique_in_a_project_whatever_their_case():
    project = make_project()
    policy_create(project=project, user=None, name="Base", source="tiny")
    with pytest.raises(PolicyError, match="already exists"):
        policy_create(project=project, user=None, name="base", source="tiny")
    policy_create(project=make_project(), user=None, name="base", source="tiny")


def test_only_staff_register_a_local_folder_and_it_must_be_absolute():
    project = make_project()
    staff = make_user()
    staff.is_staff = True
    with pytest.raises(PolicyError, match="must be an absolute path") as info:
        policy_create(project=project, user=staff, name="p", source="path", reference="models/x")
    assert info.value.field == "reference"
    policy = policy_create(project=project, user=staff, name="p", source="path", reference="/models//x/")
    assert policy.engine_spec() == {"source": "path", "path": "/models/x"} and policy.created_by == staff


def test_the_database_refuses_a_checkpoint_source_without_a_checkpoint():
    project = make_project()
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyModel.objects.create(project=project, name="p", source="checkpoint")
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyModel.objects.create(project=project, name="q", source="tiny", checkpoint=checkpoint_of(project))


def test_a_run_launched_from_a_checkpoint_policy_trains_from_its_folder(monkeypatch):
    from workers.celery_app import app

    monkeypatch.setattr(app, "send_task", lambda name, args: None)
    project = make_project()
    checkpoint = checkpoint_of(project)
    policy = policy_create(project=project, user=None, name="from sft", source="checkpoint",
                           checkpoint_id=checkpoint.pk)
    run = run_launch(project=project, user=None, name="round 2", kind=RunKind.POLICY, config={},
                     dataset=make_dataset(project), policy=policy)
    assert run.config["policy"]["source"] == "path" and run.config["policy"]["path"] == checkpoint.path


def test_a_reward_model_may_start_from_a_checkpoint_policys_folder_only_once_registered():
    project = make_project()
    checkpoint = checkpoint_of(project)
    config = {"backbone": "causal_lm", "path": checkpoint.path}
    with pytest.raises(RunError, match="not the folder of a policy registered in this project"):
        resolve_local_folders(project=project, kind=RunKind.REWARD_MODEL, config=config)
    policy_create(project=project, user=None, name="from sft", source="checkpoint", checkpoint_id=checkpoint.pk)
    assert resolve_local_folders(project=project, kind=RunKind.REWARD_MODEL, config=config) == config
    with pytest.raises(RunError):  # another project's policies do not count
        resolve_local_folders(project=make_project(), kind=RunKind.REWARD_MODEL, config=config)


def test_a_policy_runs_trained_from_cannot_be_deleted_one_without_runs_can():
    project = make_project()
    used, unused = make_policy(project), make_policy(project)
    make_run(project, policy=used, status=RunStatus.SUCCEEDED, name="grpo 1")
    with pytest.raises(PolicyInUse) as info:
        policy_delete(policy_id=used.id)
    assert "1 run used it: “grpo 1”" in info.value.message and "delete those runs first" in info.value.message
    policy_delete(policy_id=unused.id)
    assert list(PolicyModel.objects.values_list("pk", flat=True)) == [used.pk]


def test_a_policy_a_queued_run_uses_says_to_cancel_that_run_first():
    """The refusal said 'delete those runs first', which a queued or running run refuses too."""
    project = make_project()
    used = make_policy(project)
    make_run(project, policy=used, status=RunStatus.QUEUED, name="grpo 2")
    with pytest.raises(PolicyInUse) as info:
        policy_delete(policy_id=used.id)
    assert "cancel the ones still queued or running, then delete them once they have stopped" in info.value.message


def test_a_run_whose_checkpoint_a_policy_starts_from_is_kept_until_the_policy_goes(settings, tmp_path):
    settings.STEER_CHECKPOINT_DIR = tmp_path
    project = make_project()
    checkpoint = checkpoint_of(project)
    policy = policy_create(project=project, user=None, name="from sft", source="checkpoint",
                           checkpoint_id=checkpoint.pk)
    with pytest.raises(RunError) as info:
        run_delete(run_id=checkpoint.run_id)
    assert info.value.field == "policy" and "the policy “from sft” starts from this run's checkpoints" in info.value.message
    policy_delete(policy_id=policy.id)
    assert Checkpoint.objects.filter(pk=checkpoint.pk).exists()  # the checkpoint stays with its run
    run_delete(run_id=checkpoint.run_id)
    assert not Run.objects.filter(pk=checkpoint.run_id).exists()


def test_only_the_run_whose_checkpoint_a_policy_starts_from_is_kept(settings, tmp_path):
    settings.STEER_CHECKPOINT_DIR = tmp_path
    project = make_project()
    kept, other = checkpoint_of(project, name="kept"), checkpoint_of(project, name="other")
    policy_create(project=project, user=None, name="from kept", source="checkpoint", checkpoint_id=kept.pk)
    run_delete(run_id=other.run_id)
    assert not Run.objects.filter(pk=other.run_id).exists() and Run.objects.filter(pk=kept.run_id).exists()


def test_a_reward_model_run_on_a_policys_folder_keeps_the_policy_and_so_the_checkpoint(monkeypatch, settings, tmp_path):
    from workers.celery_app import app

    monkeypatch.setattr(app, "send_task", lambda name, args: None)
    settings.STEER_CHECKPOINT_DIR = tmp_path
    project = make_project()
    checkpoint = checkpoint_of(project)
    policy = policy_create(project=project, user=None, name="from sft", source="checkpoint",
                           checkpoint_id=checkpoint.pk)
    rm_config = {"backbone": "causal_lm", "path": checkpoint.path, "data": {"source": "labels"}}
    monkeypatch.setattr("webapp.rewards.selectors.preference_source_check", lambda **kwargs: kwargs["data"])
    with pytest.raises(RunError) as info:  # another policy than the backbone's
        run_launch(project=project, user=None, name="rm", kind=RunKind.REWARD_MODEL, config=rm_config,
                   policy=make_policy(project))
    assert info.value.field == "policy"
    run = run_launch(project=project, user=None, name="rm", kind=RunKind.REWARD_MODEL, config=rm_config)
    assert run.policy == policy
    with pytest.raises(PolicyInUse, match="“rm”"):
        policy_delete(policy_id=policy.id)
    with pytest.raises(RunError, match="“from sft”"):
        run_delete(run_id=checkpoint.run_id)
    tiny_backbone = run_launch(project=project, user=None, name="rm2", kind=RunKind.REWARD_MODEL,
                               config={"backbone": "tiny", "data": {"source": "labels"}})
    assert tiny_backbone.policy is None


# ---------------------------------------------------------------- the pages

@pytest.fixture
def researcher(client):
    user = make_user()
    project = make_project(researcher=user)
    assert client.login(username=user.username, password=PASSWORD)
    client.user = user
    return project


def test_the_list_shows_each_policy_escaped_with_its_origin_and_runs(client, researcher):
    checkpoint = checkpoint_of(researcher, name="<b>sft</b>")
    policy = policy_create(project=researcher, user=None, name="<script>x</script>", source="checkpoint",
                           checkpoint_id=checkpoint.pk)
    make_run(researcher, policy=policy)
    body = client.get(reverse("policies:list", args=[researcher.id])).content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in body and "<script>x" not in body
    assert "&lt;b&gt;sft&lt;/b&gt;</a> · step 8" in body and "<td>1</td>" in body
    assert f"{reverse('experiments:new', args=[researcher.id])}?policy={policy.id}" in body
    assert reverse("policies:delete", args=[researcher.id, policy.id]) in body
    assert reverse("policies:list", args=[researcher.id]) in client.get(
        reverse("projects:overview", args=[researcher.id])).content.decode()  # the project's tabs


def test_registering_a_builtin_on_the_page(client, researcher):
    url = reverse("policies:new", args=[researcher.id])
    body = client.get(url).content.decode()
    assert "smollm2-135m-instruct" in body and 'value="path"' not in body  # no folder for non-staff
    response = client.post(url, {"name": "smol", "source": "builtin", "builtin": "smollm2-135m-instruct"})
    assert response.status_code == 302 and response.url == reverse("policies:list", args=[researcher.id])
    policy = PolicyModel.objects.get(project=researcher)
    assert (policy.name, policy.source, policy.created_by) == ("smol", "builtin", client.user)


def test_the_run_page_links_each_checkpoint_of_a_finished_run_to_a_chosen_registration(client, researcher):
    checkpoint = checkpoint_of(researcher)
    link = f"{reverse('policies:new', args=[researcher.id])}?checkpoint={checkpoint.pk}"
    assert link in client.get(reverse("experiments:detail", args=[researcher.id, checkpoint.run_id])).content.decode()
    running = checkpoint_of(researcher, status=RunStatus.RUNNING)
    reward_model = checkpoint_of(researcher, kind=RunKind.REWARD_MODEL)
    for other in (running, reward_model):
        assert "Register as a policy" not in client.get(
            reverse("experiments:detail", args=[researcher.id, other.run_id])).content.decode()
    body = client.get(link).content.decode()
    assert f'<option value="{checkpoint.pk}" selected>sft · step 8 (succeeded)</option>' in body
    assert 'name="name" value="sft@8"' in body  # a name to start from
    # only finished policy runs' checkpoints are offered
    assert f'value="{running.pk}"' not in body and f'value="{reward_model.pk}"' not in body
    response = client.post(link, {"name": "round 2", "source": "checkpoint", "checkpoint": checkpoint.pk})
    assert response.status_code == 302
    assert PolicyModel.objects.get(name="round 2").checkpoint == checkpoint


def test_a_refused_registration_shows_the_error_on_its_field_and_stores_nothing(client, researcher):
    url = reverse("policies:new", args=[researcher.id])
    response = client.post(url, {"name": "p", "source": "checkpoint", "checkpoint": ""})
    assert response.status_code == 400 and "choose the checkpoint to start from" in response.content.decode()
    assert response.context["form"].errors["checkpoint"] == ["choose the checkpoint to start from"]
    response = client.post(url, {"name": "p", "source": "path", "path": "/etc"})  # not offered to non-staff
    assert response.status_code == 400 and not PolicyModel.objects.exists()


def test_staff_register_a_local_folder_on_the_page(client, researcher):
    client.user.is_staff = True
    client.user.save()
    url = reverse("policies:new", args=[researcher.id])
    assert 'value="path"' in client.get(url).content.decode()
    response = client.post(url, {"name": "p", "source": "path", "path": "relative/x"})
    assert response.status_code == 400 and "must be an absolute path" in response.content.decode()
    assert list(response.context["form"].errors) == ["path"]
    assert client.post(url, {"name": "p", "source": "path", "path": "/models/x"}).status_code == 302
    assert PolicyModel.objects.get().reference == "/models/x"


def test_train_from_it_comes_chosen_on_the_new_run_form(client, researcher):
    first, second = make_policy(researcher, name="a"), make_policy(researcher, name="b")
    body = client.get(reverse("experiments:new", args=[researcher.id]) + f"?policy={second.id}").content.decode()
    assert f'<option value="{second.id}" selected>' in body and f'<option value="{first.id}" selected>' not in body


def test_the_delete_page_refuses_a_used_policy_and_deletes_an_unused_one(client, researcher):
    used, unused = make_policy(researcher), make_policy(researcher)
    make_run(researcher, policy=used, name="<i>r</i>")
    url = reverse("policies:delete", args=[researcher.id, used.id])
    body = client.get(url).content.decode()
    assert "cannot be deleted" in body and "&lt;i&gt;r&lt;/i&gt;" in body and "Delete policy</button>" not in body
    assert client.post(url).status_code == 409 and PolicyModel.objects.filter(pk=used.pk).exists()
    response = client.post(reverse("policies:delete", args=[researcher.id, unused.id]))
    assert response.status_code == 302 and not PolicyModel.objects.filter(pk=unused.pk).exists()


def test_another_projects_policy_answers_404_and_annotators_are_kept_out(client, researcher):
    theirs = make_policy(make_project())
    assert client.post(reverse("policies:delete", args=[researcher.id, theirs.id])).status_code == 404
    assert client.post(reverse("policies:delete", args=[theirs.project_id, theirs.id])).status_code == 404
    theirs_checkpoint = checkpoint_of(make_project())
    response = client.post(reverse("policies:new", args=[researcher.id]),
                           {"name": "p", "source": "checkpoint", "checkpoint": theirs_checkpoint.pk})
    assert response.status_code == 400 and not PolicyModel.objects.filter(name="p").exists()
    annotator = make_user()
    project = make_project(annotator=annotator)
    client.login(username=annotator.username, password=PASSWORD)
    assert client.get(reverse("policies:list", args=[project.id])).status_code == 403
    assert client.post(reverse("policies:new", args=[project.id]), {"name": "p", "source": "tiny"}).status_code == 403
    assert PolicyModel.objects.filter(pk=theirs.pk).exists()


# ---------------------------------------------------------------- the API

@pytest.fixture
def owner_api():
    user = api_user()
    project = make_project(owner=user)
    return project, token_client(user)


def test_api_registers_lists_reads_and_deletes(owner_api):
    project, api = owner_api
    checkpoint = checkpoint_of(project)
    url = f"/api/v1/projects/{project.id}/policies/"
    created = api.post(url, {"name": "from sft", "source": "checkpoint", "checkpoint": checkpoint.pk}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["source"], body["checkpoint"], body["checkpoint_run"], body["checkpoint_step"], body["run_count"]) == (
        "checkpoint", checkpoint.pk, checkpoint.run_id, 8, 0)
    assert body["reference"] == checkpoint.path
    assert api.post(url, {"name": "smol", "source": "builtin", "reference": "smollm2-135m-instruct"},
                    format="json").status_code == 201
    assert [p["name"] for p in api.get(url).json()["results"]] == ["from sft", "smol"]
    detail = f"/api/v1/policies/{body['id']}/"
    assert api.get(detail).json()["name"] == "from sft"
    make_run(project, policy_id=body["id"], name="round 2")
    refused = api.delete(detail)
    assert refused.status_code == 409 and "“round 2”" in refused.json()["error"]["message"]
    Run.objects.filter(name="round 2").delete()
    assert api.delete(detail).status_code == 204 and api.get(detail).status_code == 404


def test_api_bad_input_is_a_400_naming_the_field_and_other_projects_are_404(owner_api):
    project, api = owner_api
    url = f"/api/v1/projects/{project.id}/policies/"
    for payload, field in [({"name": "p", "source": "builtin", "reference": "nope"}, "reference"),
                           ({"name": "p", "source": "path", "reference": "/etc"}, "source"),
                           ({"name": "p", "source": "checkpoint", "checkpoint": checkpoint_of(make_project()).pk},
                            "checkpoint"),
                           ({"name": "p", "source": "galaxy"}, "source"),
                           ({"source": "tiny"}, "name")]:
        response = api.post(url, payload, format="json")
        assert response.status_code == 400 and field in response.json()["error"]["fields"], (payload, response.json())
    assert not PolicyModel.objects.exists()
    theirs = make_policy(make_project())
    assert api.get(f"/api/v1/policies/{theirs.id}/").status_code == 404
    assert api.delete(f"/api/v1/policies/{theirs.id}/").status_code == 404
    assert api.get(f"/api/v1/projects/{theirs.project_id}/policies/").status_code == 404
    assert api.post(f"/api/v1/projects/{theirs.project_id}/policies/", {"name": "p", "source": "tiny"},
                    format="json").status_code == 404
    assert PolicyModel.objects.filter(pk=theirs.pk).exists()


# ---------------------------------------------------------------- on a worker

def test_a_second_run_trains_on_from_the_first_runs_checkpoint(monkeypatch, settings, tmp_path):
    """Run A trains a tiny policy hard (lr 1e-2); its last checkpoint becomes a policy; run B
    (lr 1e-6) starts from it: B's first checkpoint lies within B's own small step of A's last
    one, while a single step of A moved the weights by more than 1e-3."""
    from safetensors.torch import load_file

    from tests.factories import tiny_run_config
    from webapp.experiments.services import run_execute
    from workers.celery_app import app

    monkeypatch.setattr(app, "send_task", lambda name, args: None)
    settings.STEER_CHECKPOINT_DIR = tmp_path
    project = make_project()
    dataset = make_dataset(project)
    first = run_launch(project=project, user=None, name="A", kind=RunKind.POLICY, dataset=dataset,
                       policy=make_policy(project), config=tiny_run_config(optim={"lr": 1e-2}))
    assert run_execute(run_id=first.id, worker="w") == RunStatus.SUCCEEDED
    last = Checkpoint.objects.filter(run=first).latest("step")
    policy = policy_create(project=project, user=None, name="A, step 3", source="checkpoint", checkpoint_id=last.pk)
    second = run_launch(project=project, user=None, name="B", kind=RunKind.POLICY, dataset=dataset, policy=policy,
                        config=tiny_run_config(total_steps=1, optim={"lr": 1e-6}))
    assert run_execute(run_id=second.id, worker="w") == RunStatus.SUCCEEDED, Run.objects.get(pk=second.id).error

    def weights(run, step):
        folder = Checkpoint.objects.get(run=run, step=step).path
        return load_file(f"{folder}/model.safetensors")

    a_start, a_end, b_end = weights(first, 2), weights(first, 3), weights(second, 1)
    name = next(k for k in a_end if k.endswith("q_proj.weight"))
    assert (b_end[name] - a_end[name]).abs().max() < 1e-4
    assert (a_end[name] - a_start[name]).abs().max() > 1e-3  # A's steps were large ones
