"""Text an attacker controls, on every page that shows it: nothing runs, no link leads to script.

A member can put arbitrary text into a project's name and guidelines, datasets, runs (names,
configs, errors, metric keys, reward names, completions), policies, rubrics, tasks (prompts,
chat roles, completions, metadata), critiques, imported pairs and reward models. Here every one
of those holds payloads, and a real browser visits every page a researcher and an annotator can
reach from the project (and the API's browsable pages), with the Markdown view switched on:
no dialog opens, no payload's marker is set, no element carries an inline event handler (Steer's
templates have none), and no link or form points at a ``javascript:``, ``data:`` or ``vbscript:`` URL.
"""

import json
import re
import uuid

import pytest
from django.utils import timezone

from tests.browser.session import crawl_links, log_in
from tests.factories import make_user
from tests.webapp.api.conftest import token_client
from webapp.experiments.metrics import metric_points_upsert
from webapp.experiments.models import Checkpoint, PolicyModel, Run, RunKind, RunStatus
from webapp.feedback.models import PreferenceLabel
from webapp.rewards.models import RewardModel

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def payloads(where: str) -> str:
    """Markup, attribute breakouts and script URLs, each setting ``window.__xss`` if it ever runs."""
    mark = f"(window.__xss=(window.__xss||[]).concat('{where}'))"
    return (
        f"<script>{mark}</script><img src=x onerror=\"{mark}\"><svg onload=\"{mark}\">"
        f"\"'><img src=x onerror={mark}>`</textarea></pre></script><script>{mark}</script>"
        f"\n\n[md link](javascript:{mark}) [data](data:text/html,<script>{mark}</script>) "
        f"<javascript:{mark}> [spaced](java\tscript:{mark}) ![img](x\" onerror=\"{mark})"
        f"\n\n<a href=\"javascript:{mark}\">raw link</a> {{{{ 7*7 }}}} {{% now 'Y' %}}"
        f"\n\n```html\n<script>{mark}</script>\n```\n\n| a<img src=x onerror={mark}> | b |\n|---|---|\n| c | d |"
    )


def short(where: str) -> str:
    """A payload for fields with a short limit (names)."""
    return f"\"'><img src=x onerror=window.__xss=['{where}']>"[:120]


def hostile_project(owner, annotator):
    """A project whose every text field holds payloads, built through the API as a member would."""
    api = token_client(owner)
    project = api.post("/api/v1/projects/", {
        "name": short("project"), "description": payloads("project description"),
        "annotation_guidelines": payloads("guidelines")}, format="json").json()
    pid = project["id"]
    assert api.post(f"/api/v1/projects/{pid}/members/", {"username": annotator.username, "role": "annotator"},
                    format="json").status_code == 201
    lines = [json.dumps({"prompt": payloads(f"prompt {i}"), "reference": payloads("reference"),
                         payloads("metadata key"): payloads("metadata value")}) for i in range(2)]
    lines.append(json.dumps({"messages": [{"role": "user", "content": payloads("message")}],
                             "reference": "4"}))
    dataset = api.post(f"/api/v1/projects/{pid}/datasets/", {
        "name": short("dataset"), "description": payloads("dataset description"),
        "content": "\n".join(lines) + "\n"}, format="json")
    assert dataset.status_code == 201, dataset.content
    policy = api.post(f"/api/v1/projects/{pid}/policies/", {"name": short("policy"), "source": "tiny"}, format="json")
    assert policy.status_code == 201
    rubric = api.post(f"/api/v1/projects/{pid}/rubrics/", {
        "name": short("rubric"), "description": payloads("rubric description"),
        "criteria": [{"name": short("criterion"), "description": payloads("criterion description"),
                      "scale": "likert5"}]}, format="json").json()
    runs = []
    for n in range(2):
        run = api.post(f"/api/v1/projects/{pid}/runs/", {
            "name": short(f"run {n}"), "kind": "external",
            "config": {payloads("config key"): payloads("config value"), "n": n}}, format="json").json()
        runs.append(run["id"])
        api.post(f"/api/v1/runs/{run['id']}/status/", {"status": "running", "total_steps": 2}, format="json")
        points = [[short("metric key"), s, 0.5 * s] for s in range(3)] + [["reward", s, 0.1 * s] for s in range(3)]
        assert api.post(f"/api/v1/runs/{run['id']}/metrics/", {"points": points}, format="json").status_code == 201
        prompt = payloads("trajectory prompt") if n == 0 else [  # an external trainer's chat prompt, kept as messages
            {"role": "system", "content": payloads("trajectory system message")},
            {"role": "user", "content": payloads("trajectory user message")}]
        records = [{"step": 1, "group_index": 0, "sample_index": i, "prompt": prompt,
                    "completion": payloads(f"completion {i}"), "reward": float(i),
                    "rewards": {short("reward name"): float(i)}} for i in range(2)]
        assert api.post(f"/api/v1/runs/{run['id']}/trajectories/", {"records": records},
                        format="json").status_code == 201
        api.post(f"/api/v1/runs/{run['id']}/status/", {"status": "failed", "error": payloads("run error")},
                 format="json")
    Checkpoint.objects.create(run_id=runs[0], step=1, path="/nowhere/step-1", size_bytes=1)
    task_lines = [
        json.dumps({"prompt": payloads("task prompt"), "completions": [payloads("task A"), payloads("task B")],
                    "metadata": {payloads("task metadata key"): payloads("task metadata")}}),
        json.dumps({"prompt": [{"role": "system", "content": payloads("task message")}],
                    "completions": [payloads("rank A"), payloads("rank B"), payloads("rank C")]}),
    ]
    tasks = api.post(f"/api/v1/projects/{pid}/tasks/", {"content": "\n".join(task_lines), "rubric": rubric["id"],
                                                       "required_labels": 2}, format="json")
    assert tasks.status_code == 201, tasks.content
    for task in tasks.json():
        k = len(task["candidates"])
        for user in (owner, annotator):
            token_client(user).post(f"/api/v1/tasks/{task['id']}/labels/", {
                "ranking": [[i] for i in range(k)], "critique": payloads("critique"),
                "submission_key": uuid.uuid4().hex}, format="json")
    PreferenceLabel.objects.filter(annotator=annotator).delete()  # the annotator's queue keeps its tasks
    pairs = "\n".join(json.dumps({"prompt": payloads("pair prompt"), "chosen": payloads("chosen"),
                                  "rejected": payloads("rejected")}) for _ in range(2))
    pair_set = api.post(f"/api/v1/projects/{pid}/pair-sets/", {"name": short("pair set"), "content": pairs},
                        format="json")
    assert pair_set.status_code == 201
    # a DPO run that trained the policy on the pairs, with its metrics and its last checkpoint registered
    dpo = Run.objects.create(project_id=pid, name=short("dpo run"), kind=RunKind.DPO, policy_id=policy.json()["id"],
                             config={"data": {"source": "pairs", "pair_set": pair_set.json()["id"]}},
                             status=RunStatus.SUCCEEDED, finished_at=timezone.now(), current_step=2, total_steps=2)
    metric_points_upsert(run_id=dpo.id, points=[("rewards/accuracies", s, 0.5 * s) for s in (1, 2)])
    last = Checkpoint.objects.create(run=dpo, step=2, path="/nowhere/dpo-step-2", size_bytes=1)
    PolicyModel.objects.create(project_id=pid, name=short("dpo policy"), source=PolicyModel.Source.CHECKPOINT,
                               checkpoint=last)
    # an SFT run that fine-tuned the policy on the dataset's references, charted, its policy registered
    sft = Run.objects.create(project_id=pid, name=short("sft run"), kind=RunKind.SFT, policy_id=policy.json()["id"],
                             dataset_id=dataset.json()["id"],
                             config={"data": {"source": "dataset", "dataset": dataset.json()["id"]}},
                             status=RunStatus.SUCCEEDED, finished_at=timezone.now(), current_step=2, total_steps=2)
    metric_points_upsert(run_id=sft.id, points=[("mean_token_accuracy", s, 0.5 * s) for s in (1, 2)])
    last = Checkpoint.objects.create(run=sft, step=2, path="/nowhere/sft-step-2", size_bytes=1)
    PolicyModel.objects.create(project_id=pid, name=short("sft policy"), source=PolicyModel.Source.CHECKPOINT,
                               checkpoint=last)
    RewardModel.objects.create(project_id=pid, name=short("reward model"), backbone="tiny", path="/nowhere/rm",
                               metrics={short("rm metric"): 0.5})
    Run.objects.filter(pk=runs[1]).update(status=RunStatus.SUCCEEDED, finished_at=timezone.now())
    return pid, runs


FINDINGS_JS = """() => {
  const found = [];
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      if (/^on/i.test(attr.name)) found.push(`${el.tagName} ${attr.name}=${attr.value.slice(0, 60)}`);
    }
  }
  for (const el of document.querySelectorAll('[href], [src], [action], [formaction], [xlink\\\\:href]')) {
    for (const name of ['href', 'src', 'action', 'formaction', 'xlink:href']) {
      const value = el.getAttribute(name);
      if (value && /^\\s*(javascript|data|vbscript):/i.test(value.replace(/[\\u0000-\\u001f]/g, '')))
        found.push(`${el.tagName} ${name}=${value.slice(0, 60)}`);
    }
  }
  return {found, xss: window.__xss || []};
}"""


def crawl(page, live_server, start: list[str], allowed: re.Pattern, limit: int = 120) -> dict:
    """Visit every same-site page reachable by links from ``start`` whose path matches ``allowed``."""
    dialogs, refused = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: refused.append(f"{page.url}: {m.text}")
            if "Content Security Policy" in m.text else None)
    report = {}

    def visit(path, response) -> bool:
        page.wait_for_load_state("networkidle")
        for button in page.query_selector_all(".text-view [data-text-view=rendered]"):
            if button.is_visible():
                button.click()  # the Markdown copies, shown
        found = page.evaluate(FINDINGS_JS)
        if found["found"] or found["xss"]:
            report[path] = found
        return True

    seen = crawl_links(page, live_server, start, allowed, visit, limit)
    return {"pages": seen, "report": report, "dialogs": dialogs, "refused": refused}


def test_no_page_runs_or_links_to_script_from_hostile_text(page, live_server):
    owner, annotator = make_user(), make_user()
    pid, runs = hostile_project(owner, annotator)
    allowed = re.compile(rf"^/projects/{pid}/|^/accounts/tokens/$|^/projects/$")
    log_in(page, live_server, owner)
    extra = [f"/projects/{pid}/runs/{r}/trajectories/" for r in runs]
    extra += [f"/projects/{pid}/feedback/tasks/head-to-head/?a={runs[0]}&b={runs[1]}"]
    api_pages = [f"/api/v1/projects/{pid}/{what}/" for what in ("tasks", "labels", "runs", "datasets", "rubrics",
                                                                 "pair-sets", "reward-models", "policies")]
    api_pages += [f"/api/v1/runs/{runs[0]}/trajectories/", f"/api/v1/projects/{pid}/"]
    result = crawl(page, live_server, [f"/projects/{pid}/", *extra, *api_pages], allowed)
    assert len(result["pages"]) > 25, sorted(result["pages"])
    dpo = Run.objects.get(project_id=pid, kind=RunKind.DPO)
    sft = Run.objects.get(project_id=pid, kind=RunKind.SFT)
    assert {f"/projects/{pid}/runs/{dpo.id}/", f"/projects/{pid}/runs/new-dpo/", f"/projects/{pid}/runs/{sft.id}/",
            f"/projects/{pid}/runs/new-sft/"} <= set(result["pages"])
    assert result["report"] == {} and result["dialogs"] == [], result
    assert result["refused"] == []  # the Content-Security-Policy stops nothing Steer's pages do
    page.context.clear_cookies()
    log_in(page, live_server, annotator)
    result = crawl(page, live_server, [f"/projects/{pid}/", f"/projects/{pid}/feedback/annotate/"], allowed)
    assert f"/projects/{pid}/feedback/annotate/" in result["pages"]
    assert result["report"] == {} and result["dialogs"] == [] and result["refused"] == [], result


def test_markup_that_got_into_a_page_would_not_run(page, live_server):
    """The second wall: were model text ever put into a page as markup, the browser's policy
    (webapp.core.csp) would refuse its handlers, inline scripts and script links."""
    owner = make_user()
    pid, _ = hostile_project(owner, make_user())
    log_in(page, live_server, owner)
    refused = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{live_server.url}/projects/{pid}/feedback/tasks/")
    page.evaluate("""() => {
      const div = document.createElement('div');
      div.innerHTML = '<img src="x" onerror="window.__ran = (window.__ran || 0) + 1">'
                    + '<a id="js-link" href="javascript:window.__ran = (window.__ran || 0) + 1">x</a>';
      document.body.appendChild(div);
      const script = document.createElement('script');
      script.textContent = 'window.__ran = (window.__ran || 0) + 1';
      document.body.appendChild(script);
    }""")
    page.click("#js-link")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__ran") is None
    assert len(refused) >= 3, refused
