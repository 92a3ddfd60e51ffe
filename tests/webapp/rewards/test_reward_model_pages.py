"""What the reward-model pages print: metrics looked up by key, and the run header."""

import re

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_dataset, make_policy, make_project, make_run, make_user
from webapp.experiments.models import RunKind
from webapp.rewards.models import RewardModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher(client):
    user = make_user()
    project = make_project(owner=user)
    assert client.login(username=user.username, password=PASSWORD)
    project.user = user
    return project


def cells(body: str, name: str) -> list[str]:
    """The text of each cell in the reward model's row."""
    row = re.search(rf"<tr>\s*<td>{re.escape(name)}</td>(.*?)</tr>", body, re.DOTALL).group(1)
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)]


def test_the_list_looks_metrics_up_by_key_not_by_their_order(client, researcher):
    """jsonb stores keys shortest first, so eval/records came before train/records: '/ 1 held out5 train'."""
    RewardModel.objects.create(project=researcher, name="full", backbone="tiny", path="/m/1", metrics={
        "train/records": 5, "eval/records": 1, "eval/accuracy": 0.75, "eval/loss": 0.5, "train/loss": 0.25})
    RewardModel.objects.create(project=researcher, name="train-only", backbone="tiny", metrics={"train/records": 8})
    RewardModel.objects.create(project=researcher, name="none", backbone="tiny")
    body = client.get(reverse("rewards:list", args=[researcher.id])).content.decode()
    # Backbone, members, held-out accuracy, held-out loss, records, ...
    assert cells(body, "full")[2:5] == ["0.750", "0.5000", "5 train · 1 held out"]
    assert cells(body, "train-only")[2:5] == ["", "", "8 train"]
    assert cells(body, "none")[2:5] == ["", "", ""]


def test_the_list_shows_how_often_master_key_probes_beat_the_preferred_answer(client, researcher):
    RewardModel.objects.create(project=researcher, name="sound", backbone="tiny", path="/m/1", metrics={
        "eval/probes/beat_preferred": 0.0, "eval/probes/worst_beat_preferred": 0.0})
    RewardModel.objects.create(project=researcher, name="fooled", backbone="tiny", path="/m/2", metrics={
        "eval/probes/beat_preferred": 0.5667, "eval/probes/worst_beat_preferred": 1.0})
    RewardModel.objects.create(project=researcher, name="older", backbone="tiny", path="/m/3")
    body = client.get(reverse("rewards:list", args=[researcher.id])).content.decode()
    assert cells(body, "sound")[5] == "0.00 (worst probe 0.00)"
    assert cells(body, "fooled")[5] == "0.57 (worst probe 1.00)"
    assert '<span class="warn">0.57</span>' in body and '<span class="warn">0.00' not in body
    assert cells(body, "older")[5] == ""


def run_header(client, project, run) -> str:
    body = client.get(reverse("experiments:detail", args=[project.id, run.id])).content.decode()
    return re.search(r'</nav>\s*<p class="muted">(.*?)</p>', body, re.DOTALL).group(1)


def test_a_run_header_starts_with_what_the_run_has(client, researcher):
    user = researcher.user
    rm_run = make_run(researcher, kind=RunKind.REWARD_MODEL, created_by=user)
    header = run_header(client, researcher, rm_run)
    assert header.startswith(f"Launched by {user.username} · ") and "· ·" not in header

    anonymous = make_run(researcher, kind=RunKind.REWARD_MODEL)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", run_header(client, researcher, anonymous))

    policy, dataset = make_policy(researcher, name="tiny-p"), make_dataset(researcher, name="math")
    full = make_run(researcher, policy=policy, dataset=dataset, created_by=user)
    assert run_header(client, researcher, full).startswith(
        f"Policy tiny-p · dataset math · launched by {user.username} · ")
    only_dataset = make_run(researcher, dataset=dataset)
    assert run_header(client, researcher, only_dataset).startswith("Dataset math · ")


def test_the_training_runs_progress_bars_are_named_after_their_run(client, researcher):
    """As in the runs list: a bar with an accessible name and the step beside it; a run no worker
    has started shows no empty bar but that it waits for one."""
    running = make_run(researcher, kind=RunKind.REWARD_MODEL, name="rm-<b>", status="running", progress=0.25,
                       current_step=2, total_steps=8)
    queued = make_run(researcher, kind=RunKind.REWARD_MODEL, name="rm-queued")
    body = client.get(reverse("rewards:list", args=[researcher.id])).content.decode()
    runs = body.split("<h2>Training runs</h2>", 1)[1].split("</table>", 1)[0]
    assert re.findall(r"<progress[^>]*>", runs) == [
        '<progress max="1" value="0.25" aria-label="Progress of rm-&lt;b&gt;">']
    assert '<span class="muted">2/8</span>' in runs
    row = re.search(rf"{queued.name}</a>.*?</tr>", runs, re.DOTALL).group(0)
    assert "waiting for a GPU worker" in row and "<progress" not in row
    assert running.name not in runs  # escaped, never raw
