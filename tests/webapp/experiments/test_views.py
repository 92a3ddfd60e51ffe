"""Run pages: the New-run form, the run page's status, chart data, cancel and trajectories."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import (
    PASSWORD,
    make_dataset,
    make_policy,
    make_project,
    make_run,
    make_user,
    tiny_run_form_data,
)
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import Run, RunStatus, Trajectory

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher(client):
    user = make_user()
    project = make_project(owner=user)
    client.login(username=user.username, password=PASSWORD)
    return project


def new_run_url(project):
    return reverse("experiments:new", args=[project.id])


def test_new_run_form_shows_the_engine_defaults(client, researcher):
    make_policy(researcher)
    page = client.get(new_run_url(researcher)).content.decode()
    assert 'name="train__total_steps" value="100"' in page
    assert 'name="rollout__num_generations" value="8"' in page
    assert '<option value="exact_answer" selected>' in page


def test_sizes_beyond_the_engine_bounds_are_refused_on_their_fields(client, researcher):
    data = tiny_run_form_data(make_policy(researcher), make_dataset(researcher))
    page = client.get(new_run_url(researcher)).content.decode()
    assert 'max="1024"' in page[page.index('name="rollout__num_generations"') - 200:][:400]
    response = client.post(new_run_url(researcher), {**data, "rollout__num_generations": "10000000000"})
    assert response.status_code == 400
    assert "less than or equal to 1024" in str(response.context["form"].errors["rollout__num_generations"])
    # a product of sizes, each within its own bound, is named by the engine's check
    response = client.post(new_run_url(researcher), {**data, "rollout__num_generations": "1024",
                                                     "rollout__prompts_per_step": "8192"})
    assert response.status_code == 400
    assert "completions a step; at most 65,536" in str(response.context["form"].errors)
    assert not Run.objects.exists()


def test_the_form_lists_every_reward_component_with_its_parameters(client, researcher):
    from workers.engine.rewards import REWARDS

    page = client.get(new_run_url(researcher)).content.decode()
    reference = page[page.index('<details class="reward-reference">'):page.index("</details>")]
    for name, component in REWARDS.items():
        assert f'id="reward-component-{name}"' in reference
        block = reference[reference.index(f'id="reward-component-{name}"'):]
        block = block[:block.index("</tbody>")]
        assert all(f"<code>{param}</code>" in block for param in component.params), name
    length = reference[reference.index('id="reward-component-length"'):]
    assert "<code>&quot;truncate&quot;</code>" in length[:length.index("</tbody>")]  # defaults as JSON
    assert "<dt><code>min_group_accuracy</code></dt>" in reference and "<dt><code>label</code></dt>" in reference


def test_a_reward_gated_by_group_accuracy_reaches_the_config_and_a_bad_gate_is_named(client, researcher, sent):
    data = {**tiny_run_form_data(make_policy(researcher), make_dataset(researcher)),
            "reward_1_params": '{"max_tokens": 3, "min_group_accuracy": 0.75}'}
    assert client.post(new_run_url(researcher), data).status_code == 302
    assert Run.objects.get(project=researcher).config["rewards"][1] == {
        "name": "length", "weight": 0.5, "max_tokens": 3, "min_group_accuracy": 0.75}
    data["reward_1_params"] = '{"max_tokens": 3, "min_group_accuracy": 2}'
    response = client.post(new_run_url(researcher), data)
    assert response.status_code == 400
    assert "must be in (0, 1]" in str(response.context["form"].errors["reward_1_params"])


def test_a_math_verify_reward_is_offered_launched_and_refused_where_math_verify_is_missing(
        client, researcher, sent, monkeypatch):
    import sys

    page = client.get(new_run_url(researcher)).content.decode()
    assert '<option value="math_verify">' in page and 'id="reward-component-math_verify"' in page
    data = {**tiny_run_form_data(make_policy(researcher), make_dataset(researcher)),
            "reward_0_name": "math_verify", "reward_0_params": '{"timeout_s": 3}'}
    assert client.post(new_run_url(researcher), data).status_code == 302
    assert Run.objects.get(project=researcher).config["rewards"][0] == {"name": "math_verify", "weight": 1.0,
                                                                        "timeout_s": 3}
    monkeypatch.setitem(sys.modules, "math_verify", None)  # as on a box without the package
    response = client.post(new_run_url(researcher), {**data, "name": "second"})
    assert response.status_code == 400
    assert "pip install math-verify==0.9.0" in str(response.context["form"].errors)
    assert Run.objects.filter(project=researcher).count() == 1


def test_a_valid_form_launches_a_queued_run_and_sends_its_task(client, researcher, sent,
                                                              django_capture_on_commit_callbacks):
    data = tiny_run_form_data(make_policy(researcher), make_dataset(researcher))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(new_run_url(researcher), data)
    run = Run.objects.get(project=researcher)
    assert response.status_code == 302 and response["Location"].endswith(f"/runs/{run.id}/")
    assert run.status == RunStatus.QUEUED
    assert run.config["rewards"] == [{"name": "exact_answer", "weight": 1.0},
                                     {"name": "length", "weight": 0.5, "max_tokens": 3}]
    assert sent == [("workers.tasks.run_policy", [run.id])]


def test_the_precision_chosen_on_the_form_reaches_the_run_config(client, researcher, sent):
    data = {**tiny_run_form_data(make_policy(researcher), make_dataset(researcher)),
            "policy__dtype": "bfloat16"}
    assert 'name="policy__dtype"' in client.get(new_run_url(researcher)).content.decode()
    response = client.post(new_run_url(researcher), data)
    assert response.status_code == 302
    policy = Run.objects.get(project=researcher).config["policy"]
    assert policy["dtype"] == "bfloat16" and policy["source"] == "tiny"


def test_the_new_run_form_sets_dispo_clips_and_the_cispo_surrogate(client, researcher):
    data = tiny_run_form_data(make_policy(researcher), make_dataset(researcher))
    page = client.get(new_run_url(researcher)).content.decode()
    assert 'name="algorithm__clip_eps_low_incorrect"' in page and 'name="algorithm__surrogate"' in page
    response = client.post(new_run_url(researcher), {**data, "algorithm__surrogate": "cispo",
                                                     "algorithm__clip_eps_low_incorrect": "0.1",
                                                     "algorithm__clip_eps_high_incorrect": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    algorithm = Run.objects.get(project=researcher).config["algorithm"]
    assert (algorithm["surrogate"], algorithm["clip_eps_low_incorrect"], algorithm["clip_eps_high_incorrect"]) == (
        "cispo", 0.1, None)


@pytest.mark.parametrize("change, field, message", [
    ({"rollout__num_generations": 1}, "rollout__num_generations", "must be at least 2"),
    ({"algorithm__estimator": "ppo"}, "algorithm__estimator", "Select a valid choice"),
    ({"policy__dtype": "float16"}, "policy__dtype", "Select a valid choice"),
    ({"reward_1_params": '{"max_tokens": "many"}'}, "reward_1_params", "expected int"),
    ({"reward_1_params": "{oops"}, "reward_1_params", "Not valid JSON"),
    ({"reward_0_name": "", "reward_1_name": ""}, "reward_0_name", "Choose at least one reward"),
    ({"overrides": '{"filters": {"max_refill_rounds": -1}}'}, "overrides", "must be &gt;= 0"),
    ({"overrides": '{"polcy": {}}'}, "overrides", "unknown key"),
    ({"name": "  "}, "name", "This field is required"),
    ({"train__seed": "99999999999999999999999"}, "train__seed", "2**32 - 1"),
    ({"overrides": '{"filters": NaN}'}, "overrides", "NaN is not a number"),
    ({"algorithm__clip_eps_low_incorrect": 1.5}, "algorithm__clip_eps_low_incorrect", "must be in [0, 1)"),
    ({"algorithm__clip_eps_high_incorrect": 0.5, "reward_0_name": "", "reward_1_name": "length"},
     "algorithm__clip_eps_high_incorrect", "needs a 0/1 reward"),
    ({"algorithm__surrogate": "trpo"}, "algorithm__surrogate", "Select a valid choice"),
])
def test_invalid_input_is_shown_on_its_field_and_nothing_is_queued(client, researcher, sent, change, field, message,
                                                                  django_capture_on_commit_callbacks):
    data = {**tiny_run_form_data(make_policy(researcher), make_dataset(researcher)), **change}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(new_run_url(researcher), data)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message in response.content.decode()
    assert not Run.objects.exists() and sent == [] and callbacks == []


def test_every_bad_field_is_marked_in_one_answer(client, researcher, sent):
    data = {**tiny_run_form_data(make_policy(researcher), make_dataset(researcher)), "name": "",
            "rollout__num_generations": "1", "optim__lr": "-0.001", "reward_1_name": "exact_answer",
            "reward_1_weight": "x"}
    response = client.post(new_run_url(researcher), data)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert {"name", "rollout__num_generations", "optim__lr", "reward_1_weight"} <= set(errors), errors
    assert "must be at least 2" in str(errors["rollout__num_generations"]) and "must be &gt; 0" in response.content.decode()
    assert not Run.objects.exists() and sent == []


def test_a_policy_of_another_project_cannot_be_chosen(client, researcher, sent):
    other = make_project(owner=make_user())
    data = tiny_run_form_data(make_policy(other), make_dataset(researcher))
    response = client.post(new_run_url(researcher), data)
    assert "policy" in response.context["form"].errors
    assert not Run.objects.exists()


def test_run_pages_of_another_project_answer_404(client, researcher):
    run = make_run(make_project(owner=make_user()))
    for name in ("detail", "status", "chart_data", "trajectories"):
        assert client.get(reverse(f"experiments:{name}", args=[researcher.id, run.id])).status_code == 404
        assert client.get(reverse(f"experiments:{name}", args=[run.project_id, run.id])).status_code == 404
    assert client.post(reverse("experiments:cancel", args=[run.project_id, run.id])).status_code == 404


def test_an_annotator_cannot_open_run_pages(client):
    annotator = make_user()
    project = make_project(owner=make_user(), annotator=annotator)
    client.login(username=annotator.username, password=PASSWORD)
    assert client.get(reverse("experiments:list", args=[project.id])).status_code == 403


def test_status_polling_stops_once_the_run_is_over(client, researcher):
    running = make_run(researcher, status=RunStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(seconds=5))
    done = make_run(researcher, status=RunStatus.SUCCEEDED)
    panel = client.get(reverse("experiments:status", args=[researcher.id, running.id]), HTTP_HX_REQUEST="true")
    assert panel.status_code == 200
    assert "heartbeat 5\xa0seconds ago" in panel.content.decode()  # not "0 minutes ago"
    assert client.get(reverse("experiments:status", args=[researcher.id, done.id]), HTTP_HX_REQUEST="true").status_code == 286


def test_a_running_run_without_a_recent_heartbeat_shows_worker_lost(client, researcher, settings):
    stale = timezone.now() - timedelta(seconds=settings.STEER_HEARTBEAT_TIMEOUT_S + 1)
    run = make_run(researcher, status=RunStatus.RUNNING, heartbeat_at=stale, worker="gpu-1")
    page = client.get(reverse("experiments:detail", args=[researcher.id, run.id])).content.decode()
    assert "Worker lost" in page and ">Running<" not in page
    listing = client.get(reverse("experiments:list", args=[researcher.id])).content.decode()
    assert "Worker lost" in listing


def test_cancel_button_cancels_a_queued_run(client, researcher):
    run = make_run(researcher)
    response = client.post(reverse("experiments:cancel", args=[researcher.id, run.id]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Cancelled" in response.content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


def test_chart_data_overlays_the_runs_asked_for(client, researcher):
    run, other = make_run(researcher, name="mine"), make_run(researcher, name="baseline")
    foreign = make_run(make_project(owner=make_user()))
    for r in (run, other, foreign):
        metric_points_upsert(run_id=r.id, points=[("reward", s, s / 10) for s in range(1, 6)])
    url = reverse("experiments:chart_data", args=[researcher.id, run.id])
    data = client.get(url, {"compare": [other.id, foreign.id]}).json()
    assert {(s["run_id"], s["key"]) for s in data["series"]} == {(run.id, "reward"), (other.id, "reward")}
    assert data["runs"] == {str(run.id): "mine", str(other.id): "baseline"}
    assert data["latest"][str(run.id)]["reward"] == {"step": 5, "value": 0.5}


def test_chart_data_names_the_compared_runs_still_going(client, researcher):
    """A finished run's charts keep polling while a run compared with it is still going."""
    run = make_run(researcher, status=RunStatus.SUCCEEDED)
    live, done = make_run(researcher, status=RunStatus.RUNNING), make_run(researcher, status=RunStatus.FAILED)
    foreign = make_run(make_project(owner=make_user()), status=RunStatus.RUNNING)
    url = reverse("experiments:chart_data", args=[researcher.id, run.id])
    assert client.get(url, {"compare": [live.id, done.id, foreign.id]}).json()["compared_active"] == [str(live.id)]
    assert client.get(url).json()["compared_active"] == []


def test_chart_data_names_the_compared_runs_it_did_not_find(client, researcher):
    """A compared run deleted while its page is open: its id is said, so the page can say so."""
    run, kept, gone = make_run(researcher), make_run(researcher), make_run(researcher)
    foreign = make_run(make_project(owner=make_user()))
    url = reverse("experiments:chart_data", args=[researcher.id, run.id])
    asked = {"compare": [kept.id, gone.id, foreign.id, "x", run.id, gone.id]}
    assert client.get(url, asked).json()["compared_missing"] == [str(foreign.id)]  # another project's: not found
    gone_id = gone.id
    gone.delete()
    data = client.get(url, asked).json()
    assert data["compared_missing"] == [str(gone_id), str(foreign.id)]  # once each, in the address's order
    assert set(data["runs"]) == {str(run.id), str(kept.id)}
    assert client.get(url).json()["compared_missing"] == []


def test_chart_data_lists_the_settings_in_which_the_compared_runs_differ(client, researcher):
    dataset = make_dataset(researcher, name="arith")
    run = make_run(researcher, name="mine", dataset=dataset, config={"algorithm": {"beta": 0.0}, "optim": {"lr": 1e-6}})
    other = make_run(researcher, name="baseline", dataset=dataset,
                     config={"algorithm": {"beta": 0.04}, "optim": {"lr": 1e-6}}, policy=make_policy(researcher, name="base"))
    foreign = make_run(make_project(owner=make_user()), config={"secret": "<b>x</b>"})
    url = reverse("experiments:chart_data", args=[researcher.id, run.id])
    data = client.get(url, {"compare": [other.id, foreign.id]}).json()["differences"]
    assert data == {"order": [str(run.id), str(other.id)], "rows": [
        {"key": "Policy", "values": ["—", "base"]},
        {"key": "algorithm.beta", "values": ["0.0", "0.04"]},
    ]}
    assert client.get(url).json()["differences"] == {"order": [str(run.id)], "rows": []}


def test_trajectory_browser_escapes_model_text_and_sorts_by_reward(client, researcher):
    run = make_run(researcher)
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    for j, reward in enumerate([0.1, 0.9, 0.5]):
        Trajectory.objects.create(run=run, step=1, group_index=0, sample_index=j, prompt_text=f"prompt {evil}",
                                  completion=f"answer {j} {evil}", rewards={"exact_answer": reward}, reward=reward,
                                  advantage=reward - 0.5, length=5, finish_reason="stop")
    page = client.get(reverse("experiments:trajectories", args=[researcher.id, run.id]), {"step": 1}).content.decode()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.index("answer 1") < page.index("answer 2") < page.index("answer 0")
    ascending = client.get(reverse("experiments:trajectories", args=[researcher.id, run.id]),
                           {"step": 1, "order": "-reward"}, HTTP_HX_REQUEST="true").content.decode()
    assert ascending.index("answer 0") < ascending.index("answer 2") < ascending.index("answer 1")


def _trajectory(run, step, completion):
    Trajectory.objects.create(run=run, step=step, group_index=0, sample_index=0, prompt_text="p",
                              completion=completion, rewards={}, reward=0.0, advantage=0.0, length=1)


def test_trajectory_browser_of_an_active_run_follows_the_newest_step_and_keeps_a_chosen_one(client, researcher):
    run = make_run(researcher, status=RunStatus.RUNNING, heartbeat_at=timezone.now())
    url = reverse("experiments:trajectories", args=[researcher.id, run.id])
    _trajectory(run, 1, "first step")
    page = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 5s"' in page and "first step" in page
    _trajectory(run, 2, "second step")
    latest = client.get(url, {"step": ""}, HTTP_HX_REQUEST="true").content.decode()  # what a poll sends
    assert "second step" in latest and "first step" not in latest and "latest (2)" in latest
    chosen = client.get(url, {"step": "1"}, HTTP_HX_REQUEST="true").content.decode()
    assert "first step" in chosen and '<option value="1" selected>' in chosen


def test_a_poll_of_a_live_runs_trajectories_leaves_the_pickers_alone(client, researcher):
    """The groups poll (HX-Target: trajectory-groups): the groups and the step list's options to
    put in place, never the pickers themselves, which an open list would close with."""
    run = make_run(researcher, status=RunStatus.RUNNING, heartbeat_at=timezone.now())
    url = reverse("experiments:trajectories", args=[researcher.id, run.id])
    _trajectory(run, 1, "first step")
    section = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert '<form id="trajectory-picker"' in section and 'id="trajectory-groups"' in section
    assert 'hx-include="#trajectory-picker"' in section and "hx-swap-oob" not in section
    _trajectory(run, 2, "second step")
    poll = client.get(url, {"step": "1", "order": "reward"}, HTTP_HX_REQUEST="true",
                      HTTP_HX_TARGET="trajectory-groups").content.decode()
    assert "<form" not in poll and 'name="order"' not in poll
    assert poll.startswith('<div id="trajectory-groups"') and "first step" in poll and "second step" not in poll
    assert '<select id="trajectory-step" hx-swap-oob="innerHTML">' in poll
    assert "latest (2)" in poll and '<option value="1" selected>' in poll
    Trajectory.objects.filter(run=run).delete()  # a resumed run discarded them: the whole section again
    gone = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="trajectory-groups")
    assert gone["HX-Retarget"] == "#trajectories" and "No trajectories stored yet." in gone.content.decode()


def _opening_tag(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[html.rindex("<", 0, start):html.index(">", start) + 1]


def test_the_step_picker_and_the_groups_poll_share_one_request_queue(client, researcher):
    """hx-sync: the picker's request replaces one of its own still on its way and aborts a poll of
    the groups on its way; a poll is not sent while the picker's request is (a late answer would
    put the older view back, or replace the picker that was to send the newer request)."""
    run = make_run(researcher, status=RunStatus.RUNNING, heartbeat_at=timezone.now())
    url = reverse("experiments:trajectories", args=[researcher.id, run.id])
    _trajectory(run, 1, "first step")
    # the panel the run page loads, and the trajectories' page of their own
    for section in (client.get(url, HTTP_HX_REQUEST="true").content.decode(), client.get(url).content.decode()):
        assert 'hx-sync="this:replace"' in _opening_tag(section, "trajectory-picker")
        groups = _opening_tag(section, "trajectory-groups")
        assert 'hx-trigger="every 5s"' in groups and 'hx-sync="#trajectory-picker:abort"' in groups
        assert section.count("hx-sync") == 2
    poll = client.get(url, {"step": "1"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="trajectory-groups").content.decode()
    assert 'hx-sync="#trajectory-picker:abort"' in _opening_tag(poll, "trajectory-groups")  # the next poll too
    run.status = RunStatus.SUCCEEDED
    run.save(update_fields=["status"])
    finished = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-sync="this:replace"' in _opening_tag(finished, "trajectory-picker")
    assert "hx-sync" not in _opening_tag(finished, "trajectory-groups")  # no poll left to sync


def test_trajectory_browser_and_checkpoints_of_a_finished_run_stop_polling(client, researcher):
    run = make_run(researcher, status=RunStatus.SUCCEEDED)
    _trajectory(run, 1, "only step")
    run.checkpoints.create(step=1, path="/ckpt/run-1/step-1", size_bytes=2048)
    page = client.get(reverse("experiments:trajectories", args=[researcher.id, run.id]),
                      HTTP_HX_REQUEST="true").content.decode()
    assert "only step" in page and "every 5s" not in page
    status = client.get(reverse("experiments:status", args=[researcher.id, run.id]), HTTP_HX_REQUEST="true")
    assert "/ckpt/run-1/step-1" in status.content.decode()


def test_a_queued_run_shows_the_steps_its_config_plans(client, researcher):
    run = make_run(researcher, config={"train": {"total_steps": 40}})
    page = client.get(reverse("experiments:detail", args=[researcher.id, run.id])).content.decode()
    assert "waiting for a GPU worker to start it · 40 steps planned" in page


@pytest.mark.parametrize("name, params", [
    ("experiments:trajectories", {"step": "²"}),
    ("experiments:trajectories", {"step": str(2**70)}),
    ("experiments:chart_data", {"compare": ["²", str(2**70)]}),
    ("experiments:chart_data", {"key": ["a\x00b", "k" * 500]}),
])
def test_query_values_that_are_no_id_or_key_are_ignored(client, researcher, name, params):
    run = make_run(researcher)
    _trajectory(run, 1, "only step")
    metric_points_upsert(run_id=run.id, points=[("reward", 1, 0.5)])
    response = client.get(reverse(name, args=[researcher.id, run.id]), params)
    assert response.status_code == 200
    if name == "experiments:trajectories":
        assert "only step" in response.content.decode()  # the newest step, as for no step
    elif "key" in params:
        assert response.json()["series"] == []  # no stored key matches them
    else:
        assert response.json()["runs"] == {str(run.id): run.name}  # nothing compared


# ---------------------------------------------------------------- delete

@pytest.fixture
def checkpoint_root(settings, tmp_path):
    settings.STEER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    return settings.STEER_CHECKPOINT_DIR


def run_with_files(project, **fields):
    run = make_run(project, **{"status": RunStatus.SUCCEEDED, **fields})
    metric_points_upsert(run_id=run.id, points=[("reward", s, 0.5) for s in range(3)])
    Trajectory.objects.create(run=run, step=0, group_index=0, sample_index=0, prompt_text="p", completion="c",
                              reward=1.0, length=1)
    (run.checkpoint_dir / "step-1").mkdir(parents=True)
    return run


def delete_url(run):
    return reverse("experiments:delete", args=[run.project_id, run.id])


def test_the_run_page_offers_delete_only_once_the_run_is_over(client, researcher):
    done = make_run(researcher, status=RunStatus.FAILED)
    running = make_run(researcher, status=RunStatus.RUNNING, heartbeat_at=timezone.now())
    assert delete_url(done) in client.get(reverse("experiments:detail", args=[researcher.id, done.id])).content.decode()
    page = client.get(reverse("experiments:detail", args=[researcher.id, running.id])).content.decode()
    assert delete_url(running) not in page


def test_delete_asks_first_then_deletes_and_returns_to_the_runs_list(client, researcher, checkpoint_root,
                                                                    django_capture_on_commit_callbacks):
    run = run_with_files(researcher, name="<b>old sweep</b>")
    page = client.get(delete_url(run))
    assert page.status_code == 200 and Run.objects.filter(pk=run.id).exists()
    body = page.content.decode()
    assert "1 metric series" in body and "1 trajectory" in body and 'name="csrfmiddlewaretoken"' in body
    assert "<b>old sweep</b>" not in body and "&lt;b&gt;old sweep&lt;/b&gt;" in body

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(delete_url(run), follow=True)
    assert response.redirect_chain == [(reverse("experiments:list", args=[researcher.id]), 302)]
    body = response.content.decode()
    assert "Deleted run “&lt;b&gt;old sweep&lt;/b&gt;”" in body
    assert not Run.objects.filter(pk=run.id).exists() and not run.checkpoint_dir.exists()


def test_delete_without_the_csrf_token_is_refused_and_with_it_succeeds(researcher, checkpoint_root):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.login(username=researcher.memberships.get().user.username, password=PASSWORD)
    run = run_with_files(researcher)
    assert client.post(delete_url(run)).status_code == 403
    assert Run.objects.filter(pk=run.id).exists()
    client.get(delete_url(run))  # the confirmation page sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    assert client.post(delete_url(run), HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true").status_code == 302
    assert not Run.objects.filter(pk=run.id).exists()


@pytest.mark.parametrize("status, words", [(RunStatus.QUEUED, "cancel it first"), (RunStatus.RUNNING, "cancel it first"),
                                           (RunStatus.SUCCEEDED, "trained by this run")])
def test_a_run_that_cannot_go_says_why_and_stays(client, researcher, checkpoint_root, status, words):
    from webapp.rewards.models import RewardModel

    run = run_with_files(researcher, status=status, kind="reward_model" if status == RunStatus.SUCCEEDED else "policy")
    if status == RunStatus.SUCCEEDED:
        RewardModel.objects.create(project=researcher, name="rm", backbone="tiny", training_run=run)
    page = client.get(delete_url(run)).content.decode()
    assert words in page and 'type="submit"' not in page
    response = client.post(delete_url(run))
    assert response.status_code == 409 and words in response.content.decode()
    assert Run.objects.filter(pk=run.id).exists() and Trajectory.objects.filter(run=run).exists()
    assert run.checkpoint_dir.is_dir()


def test_an_annotator_may_not_delete_a_run(client, checkpoint_root):
    annotator = make_user()
    project = make_project(owner=make_user(), annotator=annotator)
    run = run_with_files(project)
    client.login(username=annotator.username, password=PASSWORD)
    assert client.get(delete_url(run)).status_code == 403
    assert client.post(delete_url(run)).status_code == 403
    assert Run.objects.filter(pk=run.id).exists()


def test_a_run_of_another_project_or_a_missing_one_answers_404(client, researcher, checkpoint_root):
    run = run_with_files(make_project(owner=make_user()))
    for project_id in (researcher.id, run.project_id):
        url = reverse("experiments:delete", args=[project_id, run.id])
        assert client.get(url).status_code == 404 and client.post(url).status_code == 404
    assert Run.objects.filter(pk=run.id).exists() and run.checkpoint_dir.is_dir()
    assert client.post(reverse("experiments:delete", args=[researcher.id, 987654321])).status_code == 404
