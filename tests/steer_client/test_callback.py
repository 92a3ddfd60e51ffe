"""SteerCallback driven by a real transformers.Trainer against a live Steer server."""

import http.server
import json
import subprocess
import sys
import threading

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

import steer_client
from tests.factories import make_project, make_user
from webapp.accounts.services import api_token_create
from webapp.experiments.models import MetricPoint, Run, RunKind, RunStatus, Trajectory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

STEPS = 6


class TokenDataset(torch.utils.data.Dataset):
    def __init__(self, n: int = 16, length: int = 12):
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 64, (n, length), generator=generator)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def tiny_trainer(tmp_path) -> Trainer:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=STEPS,
        logging_steps=1,
        per_device_train_batch_size=4,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        learning_rate=1e-3,
    )
    return Trainer(model=model, args=args, train_dataset=TokenDataset())


@pytest.fixture
def credentials():
    user = make_user()
    project = make_project(owner=user)
    return project, api_token_create(user=user, name="trainer")[1]


def test_trainer_run_lands_as_a_finished_external_run_with_its_logged_metrics(
    live_server, credentials, tmp_path
):
    project, token = credentials
    trainer = tiny_trainer(tmp_path)
    callback = steer_client.watch(
        trainer,
        url=live_server.url,
        token=token,
        project=project.slug,
        run_name="tiny-lm",
    )
    trainer.train()

    run = Run.objects.get(pk=callback.run_id)
    assert (run.project_id, run.kind, run.name) == (
        project.id,
        RunKind.EXTERNAL,
        "tiny-lm",
    )
    assert (
        run.status == RunStatus.SUCCEEDED
        and run.finished_at is not None
        and run.progress == 1.0
    )
    loss_steps = list(
        MetricPoint.objects.filter(run=run, key="loss")
        .order_by("step")
        .values_list("step", flat=True)
    )
    assert loss_steps == list(range(1, STEPS + 1))
    assert MetricPoint.objects.filter(run=run, key="learning_rate").count() == STEPS
    assert run.config["args"]["max_steps"] == STEPS
    # the finished run lets go of its kept-alive connection (no server thread is left holding it)
    assert not any(
        adapter.poolmanager.pools
        for adapter in callback.client.session.adapters.values()
    )


def test_the_runs_progress_moves_while_the_trainer_trains(
    live_server, credentials, tmp_path
):
    """The run's current_step stood at 0 until the end: a report of "running" with the step was
    refused (409), and the callback sent none."""
    project, token = credentials
    trainer = tiny_trainer(tmp_path)
    callback = steer_client.watch(
        trainer, url=live_server.url, token=token, project=project.id, flush_every_s=0
    )
    seen = []

    class Watcher(steer_client.SteerCallback.__mro__[1]):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4:  # steps 1 to 3 have been logged and flushed
                seen.append(
                    Run.objects.values_list(
                        "current_step", "total_steps", "progress"
                    ).get(pk=callback.run_id)
                )

    trainer.add_callback(Watcher())
    trainer.train()
    assert seen == [(3, STEPS, 3 / STEPS)]
    assert Run.objects.get(pk=callback.run_id).status == RunStatus.SUCCEEDED


def test_logged_completions_become_trajectories_grouped_by_prompt(
    live_server, credentials, tmp_path
):
    project, token = credentials
    trainer = tiny_trainer(tmp_path)
    callback = steer_client.watch(
        trainer, url=live_server.url, token=token, project=project.id
    )

    class Completions(
        steer_client.SteerCallback.__mro__[1]
    ):  # a TrainerCallback that samples at step 3
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                callback.log_completions(
                    3,
                    ["2+2?", "2+2?", "3+3?", "3+3?"],
                    ["4", "5", "6", "7"],
                    [1.0, 0.0, 1.0, 0.0],
                )

    trainer.add_callback(Completions())
    trainer.train()

    rows = list(
        Trajectory.objects.filter(run_id=callback.run_id)
        .order_by("group_index", "sample_index")
        .values_list(
            "step", "group_index", "sample_index", "prompt_text", "completion", "reward"
        )
    )
    assert rows == [
        (3, 0, 0, "2+2?", "4", 1.0),
        (3, 0, 1, "2+2?", "5", 0.0),
        (3, 1, 0, "3+3?", "6", 1.0),
        (3, 1, 1, "3+3?", "7", 0.0),
    ]


def test_a_process_that_dies_mid_training_marks_the_run_failed(
    live_server, credentials, tmp_path, monkeypatch
):
    project, token = credentials
    trainer = tiny_trainer(tmp_path)
    callback = steer_client.watch(
        trainer, url=live_server.url, token=token, project=project.id
    )

    class Boom(steer_client.SteerCallback.__mro__[1]):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise RuntimeError("CUDA out of memory (simulated)")

    trainer.add_callback(Boom())
    with pytest.raises(RuntimeError) as info:
        trainer.train()
    monkeypatch.setattr(sys, "last_value", info.value, raising=False)
    callback._exit_hook()  # what atexit runs when the exception ends the process

    run = Run.objects.get(pk=callback.run_id)
    assert run.status == RunStatus.FAILED
    assert "CUDA out of memory (simulated)" in run.error
    assert MetricPoint.objects.filter(run=run, key="loss").exists()


def test_an_unreachable_server_keeps_points_buffered_and_training_goes_on(credentials):
    callback = steer_client.SteerCallback("http://127.0.0.1:9", "steer_x", project=1)
    callback.run_id = 1
    callback.client.retries = 0
    callback.log_metrics(5, {"loss": 1.5, "note": "text is skipped"})
    callback.flush()
    assert list(callback.points) == [("loss", 5, 1.5)]


class ScalarThatCannotBeRead:
    """A scalar type of a library's own whose item() raises what the callback does not expect."""

    def item(self):
        raise OverflowError("value too large for a double")


def test_a_number_that_cannot_be_read_as_a_float_is_skipped_with_one_warning_per_key(
    caplog,
):
    """float(10**400) raised OverflowError out of log_metrics and on_log into the training loop."""
    from fractions import Fraction
    from types import SimpleNamespace

    import numpy as np

    callback = steer_client.SteerCallback(
        "http://steer.invalid", "steer_x", project=1, flush_every_s=3600
    )
    callback.run_id = 1
    with caplog.at_level("WARNING", logger="steer_client"):
        for step, big in ((1, 10**400), (2, -(10**500))):
            callback.log_metrics(
                step,
                {
                    "big": big,
                    "loss": 0.5 / step,
                    "own": ScalarThatCannotBeRead(),
                    "vector": torch.ones(2),
                },
            )  # not a number: skipped without a word
        for step in (3, 4):
            logs = {
                "ratio": Fraction(10**400, 3),
                "loss": 0.125,
                "object": np.array(10**309, dtype=object),
            }
            callback.on_log(None, SimpleNamespace(global_step=step), None, logs=logs)
    assert list(callback.points) == [
        ("loss", 1, 0.5),
        ("loss", 2, 0.25),
        ("loss", 3, 0.125),
        ("loss", 4, 0.125),
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 4, warnings
    assert (
        "metric 'big': could not read int as a number (OverflowError: int too large"
        in warnings[0]
    )
    assert (
        "metric 'own': could not read ScalarThatCannotBeRead as a number (OverflowError"
        in warnings[1]
    )
    assert (
        "metric 'ratio': could not read Fraction as a number (OverflowError"
        in warnings[2]
    )
    assert (
        "metric 'object': could not read ndarray as a number (OverflowError"
        in warnings[3]
    )
    assert "skipped" in warnings[0]


def test_the_client_imports_without_django():
    code = (
        "import sys, steer_client; from steer_client import SteerCallback, SteerClient; "
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules), 'django imported'"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env={"PATH": "/usr/bin:/bin"},
        cwd=str(_root()),
    )


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


def test_a_server_down_at_the_start_does_not_stop_training_and_gets_the_run_later(
    live_server, credentials, tmp_path
):
    project, token = credentials
    trainer = tiny_trainer(tmp_path)
    callback = steer_client.watch(
        trainer, url="http://127.0.0.1:9", token=token, project=project.id
    )
    callback.client.retries = 0
    callback.flush_every_s = 3600  # flush only when told
    trainer.callback_handler.on_train_begin(
        trainer.args, trainer.state, trainer.control
    )  # Steer is down
    assert callback.run_id is None and not Run.objects.exists()
    callback.log_metrics(1, {"loss": 2.0})
    callback.client.base = live_server.url + "/api/v1"  # Steer is back
    callback.flush()
    run = Run.objects.get(pk=callback.run_id)
    assert run.status == RunStatus.RUNNING and run.kind == RunKind.EXTERNAL
    assert MetricPoint.objects.filter(run=run, key="loss", step=1, value=2.0).exists()
    callback.finish("succeeded")


def test_a_run_created_at_the_start_whose_answer_was_lost_is_the_run_a_later_flush_gets(
    live_server, credentials, tmp_path
):
    """Steer created the run but its answer never came back: the callback creates it again at a
    later flush under the same Idempotency-Key, and gets that run instead of a second one."""
    from tests.steer_client.test_client import lose_the_first_answer

    project, token = credentials
    trainer = tiny_trainer(tmp_path)
    callback = steer_client.watch(
        trainer, url=live_server.url, token=token, project=project.id
    )
    callback.client.retries = 0
    callback.flush_every_s = 3600  # flush only when told
    keys = lose_the_first_answer(callback.client, f"/projects/{project.id}/runs/")
    trainer.callback_handler.on_train_begin(
        trainer.args, trainer.state, trainer.control
    )
    assert (
        callback.run_id is None and Run.objects.count() == 1
    )  # stored, but the trainer does not know it
    callback.log_metrics(1, {"loss": 2.0})
    callback.flush()
    run = Run.objects.get()
    assert callback.run_id == run.pk and run.status == RunStatus.RUNNING
    assert len(keys) == 2 and keys[0] == keys[1]
    assert MetricPoint.objects.filter(run=run, key="loss", step=1, value=2.0).exists()
    callback.finish("succeeded")


@pytest.fixture
def proxy_without_upstream():
    """A reverse proxy whose Steer is down: every request answers 502 with an HTML page."""

    class BadGateway(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"<html><body>502 Bad Gateway</body></html>"
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BadGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_502_from_the_proxy_at_the_start_does_not_stop_training(
    live_server, credentials, tmp_path, proxy_without_upstream
):
    """A 5xx at the start is Steer being down, as a refused connection is: it raised SteerError
    out of on_train_begin, which stopped the training."""
    project, token = credentials
    trainer = tiny_trainer(tmp_path)
    callback = steer_client.watch(
        trainer, url=proxy_without_upstream, token=token, project=project.id
    )
    callback.client.retries = 0
    callback.flush_every_s = 3600  # flush only when told
    trainer.callback_handler.on_train_begin(
        trainer.args, trainer.state, trainer.control
    )
    assert callback.run_id is None and not Run.objects.exists()
    callback.log_metrics(1, {"loss": 2.0})
    callback.client.base = live_server.url + "/api/v1"  # Steer is back
    callback.flush()
    run = Run.objects.get(pk=callback.run_id)
    assert run.status == RunStatus.RUNNING
    assert MetricPoint.objects.filter(run=run, key="loss", step=1, value=2.0).exists()
    callback.finish("succeeded")


def test_a_refusal_at_the_start_stops_training_before_it_begins(
    live_server, credentials, tmp_path
):
    trainer = tiny_trainer(tmp_path)
    steer_client.watch(
        trainer, url=live_server.url, token="steer_wrong", project=credentials[0].id
    )
    with pytest.raises(steer_client.client.SteerError) as refused:
        trainer.train()
    assert refused.value.status == 401 and trainer.state.global_step == 0


def answering(
    monkeypatch, callback, status: int, content_type: str, body: bytes
) -> None:
    """Every request of the callback's client gets this answer."""
    import requests

    def send(method, url, **kwargs):
        response = requests.models.Response()
        response.status_code, response._content, response.url = status, body, url
        response.headers["Content-Type"] = content_type
        return response

    monkeypatch.setattr(callback.client.session, "request", send)


@pytest.mark.parametrize(
    "status, body",
    [
        (
            200,
            b"<html><form>Sign in to the VPN</form></html>",
        ),  # a login page in front of Steer
        (
            404,
            b"<html><body>404 Not Found (nginx)</body></html>",
        ),  # a proxy without the route
    ],
)
def test_an_answer_that_is_not_steers_keeps_the_batch_and_says_what_came(
    monkeypatch, caplog, status, body
):
    """Any answer under 500 was taken for Steer refusing the batch, which was dropped: a proxy's
    HTML page (a login page answered 200, a 404) lost the points and completions for good."""
    callback = steer_client.SteerCallback("http://steer.invalid", "steer_x", project=1)
    callback.run_id = 1
    callback.client.retries = 0
    callback.log_metrics(5, {"loss": 1.5})
    callback.log_completions(5, ["p"], ["c"], [1.0])
    answering(monkeypatch, callback, status, "text/html", body)
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.flush()
    assert list(callback.points) == [("loss", 5, 1.5)] and len(callback.records) == 1
    said = caplog.text
    assert (
        f"HTTP {status}" in said
        and body[:20].decode() in said
        and "keeping 1 points" in said
    )


def test_a_batch_steer_refuses_is_dropped_so_that_later_flushes_go_through(
    monkeypatch, caplog
):
    callback = steer_client.SteerCallback("http://steer.invalid", "steer_x", project=1)
    callback.run_id = 1
    callback.client.retries = 0
    callback.log_metrics(5, {"loss": 1.5})
    answering(
        monkeypatch,
        callback,
        400,
        "application/json",  # a refusal naming no point of the batch
        b'{"error": {"code": "invalid", "message": "bad point", "fields": {"points": ["bad"]}}}',
    )
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.flush()
    assert (
        not callback.points
        and "Steer refused a batch, dropped it: HTTP 400: bad point" in caplog.text
    )


def test_refused_metric_points_are_dropped_and_the_trajectories_still_sent(
    monkeypatch, caplog
):
    """A 400 on the points cleared the trajectories too, though they were never sent."""
    import requests

    callback = steer_client.SteerCallback("http://steer.invalid", "steer_x", project=1)
    callback.run_id = 1
    callback.client.retries = 0
    callback.log_metrics(5, {"loss": 1.5})
    callback.log_completions(5, ["p", "p"], ["a", "b"], [1.0, 0.0])
    sent = []

    def send(method, url, **kwargs):
        response = requests.models.Response()
        response.url, response.headers["Content-Type"] = url, "application/json"
        if "/trajectories/" in url:
            sent.extend(r["completion"] for r in kwargs["json"]["records"])
            response.status_code, body = (
                201,
                {"written": len(kwargs["json"]["records"])},
            )
        elif "/metrics/" in url:
            response.status_code, body = (
                400,
                {
                    "error": {
                        "code": "invalid",
                        "message": "bad point",
                        "fields": {"points": ["bad"]},
                    }
                },
            )
        else:  # the progress report after a flush
            response.status_code, body = 200, {}
        response._content = json.dumps(body).encode()
        return response

    monkeypatch.setattr(callback.client.session, "request", send)
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.flush()
    assert (
        not callback.points
        and "Steer refused a batch, dropped it: HTTP 400: bad point" in caplog.text
    )
    assert sent == ["a", "b"] and not callback.records


def refusing_points(monkeypatch, callback):
    """Steer's metrics route as a fake transport: every point with a negative step is refused as the
    API refuses them (400 naming each by its index); a batch without one is written. The batches
    sent, as their steps."""
    import requests

    sent = []

    def send(method, url, **kwargs):
        response = requests.models.Response()
        response.url, response.headers["Content-Type"] = url, "application/json"
        if "/metrics/" in url:
            points = kwargs["json"]["points"]
            sent.append([step for _, step, _ in points])
            bad = {
                f"points[{i}]": ["step must be a non-negative integer"]
                for i, p in enumerate(points)
                if p[1] < 0
            }
            response.status_code, body = (
                (
                    400,
                    {"error": {"code": "invalid", "message": "refused", "fields": bad}},
                )
                if bad
                else (201, {"written": len(points)})
            )
        else:  # the progress report after a flush
            response.status_code, body = 200, {}
        response._content = json.dumps(body).encode()
        return response

    monkeypatch.setattr(callback.client.session, "request", send)
    return sent


def test_a_batch_of_points_refused_for_some_points_goes_again_without_them(
    monkeypatch, caplog
):
    """A 400 naming points[i] dropped the whole buffer: one bad point lost every good one with it."""
    callback = steer_client.SteerCallback("http://steer.invalid", "steer_x", project=1)
    callback.run_id = 1
    for step in [1, -1, 2, -2, 3]:
        callback.log_metrics(step, {"loss": 0.5})
    sent = refusing_points(monkeypatch, callback)
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.flush()
    assert sent == [[1, -1, 2, -2, 3], [1, 2, 3]] and not callback.points
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert (
        len(warnings) == 1
        and "Steer refused 2 of a batch of 5 metric points" in warnings[0]
    )
    assert (
        "points[1], 'loss' at step -1: point: step must be a non-negative integer"
        in warnings[0]
    )
    assert (
        "points[3], 'loss' at step -2" in warnings[0]
        and "sending the other 3 again" in warnings[0]
    )


def test_points_go_a_request_at_a_time_and_a_refusal_costs_only_its_own_batch(
    monkeypatch, caplog
):
    """The whole buffer went through one metrics_log call: a refused point in its third request lost
    the points of every later request too (the first two were written, then dropped from the buffer)."""
    callback = steer_client.SteerCallback("http://steer.invalid", "steer_x", project=1)
    callback.run_id = 1
    # a buffer of 2,500 points, as a flush finds it (log_metrics would have flushed at 1,000)
    callback.points.extend(
        ("loss", -1 if step == 2_100 else step, 0.5) for step in range(2_500)
    )
    sent = refusing_points(monkeypatch, callback)
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.flush()
    assert [len(batch) for batch in sent] == [
        1_000,
        1_000,
        500,
        499,
    ] and not callback.points
    assert sorted(step for batch in sent[:2] + sent[3:] for step in batch) == [
        s for s in range(2_500) if s != 2_100
    ]


def unavailable_response(url):
    """Steer's 503 answer, as a proxy in front of a restarting server gives it."""
    import requests

    response = requests.models.Response()
    response.status_code, response.url = 503, url
    response._content = (
        b'{"error": {"code": "unavailable", "message": "down", "fields": {}}}'
    )
    response.headers["Content-Type"] = "application/json"
    return response


def test_points_left_after_a_refusal_stay_buffered_when_steer_then_fails(
    monkeypatch, caplog
):
    callback = steer_client.SteerCallback("http://steer.invalid", "steer_x", project=1)
    callback.run_id = 1
    callback.client.retries = 0
    for step in [1, -1, 2]:
        callback.log_metrics(step, {"loss": 0.5})
    sent = refusing_points(monkeypatch, callback)
    send = callback.client.session.request

    def then_down(method, url, **kwargs):
        if (
            len(sent) == 1 and "/metrics/" in url
        ):  # the resend without the refused point
            sent.append("down")
            return unavailable_response(url)
        return send(method, url, **kwargs)

    monkeypatch.setattr(callback.client.session, "request", then_down)
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.flush()
    assert [step for _, step, _ in callback.points] == [
        1,
        2,
    ] and "Steer is unavailable" in caplog.text
    callback.flush()
    assert not callback.points and sent[-1] == [1, 2]


def test_a_429_keeps_the_batch_for_a_later_flush(monkeypatch, caplog):
    """Too many requests is a "later", not a refusal of the data: the batch was dropped as a 4xx."""
    callback = steer_client.SteerCallback("http://steer.invalid", "steer_x", project=1)
    callback.run_id = 1
    callback.client.retries = 0
    callback.log_metrics(5, {"loss": 1.5})
    answering(
        monkeypatch,
        callback,
        429,
        "application/json",
        b'{"error": {"code": "throttled", "message": "Request was throttled.", "fields": {}}}',
    )
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.flush()
    assert list(callback.points) == [("loss", 5, 1.5)]
    assert (
        "Steer asked to slow down, keeping 1 points for later: HTTP 429" in caplog.text
    )


def refusing(monkeypatch, callback, bad):
    """Steer's trajectories route as a fake transport: a batch holding a record whose completion is in
    ``bad`` is refused as the API refuses it (400 naming the first such record's index and field); the
    others are written. The batches sent, as their completions."""
    import requests

    sent = []

    def send(method, url, **kwargs):
        response = requests.models.Response()
        response.url = url
        response.headers["Content-Type"] = "application/json"
        records = kwargs["json"]["records"]
        sent.append([r["completion"] for r in records])
        first = next((i for i, r in enumerate(records) if r["completion"] in bad), None)
        if first is None:
            response.status_code, body = 201, {"written": len(records)}
        else:
            field = f"records[{first}].completion"
            response.status_code, body = (
                400,
                {
                    "error": {
                        "code": "invalid",
                        "message": f"{field}: must be text",
                        "fields": {field: ["must be text"]},
                    }
                },
            )
        response._content = json.dumps(body).encode()
        return response

    monkeypatch.setattr(callback.client.session, "request", send)
    return sent


def callback_with_completions(completions):
    callback = steer_client.SteerCallback("http://steer.invalid", "steer_x", project=1)
    callback.run_id = 1
    callback.client.retries = 0
    callback.log_completions(
        5, ["p"] * len(completions), completions, [1.0] * len(completions)
    )
    return callback


def test_a_batch_refused_for_some_records_goes_again_without_them(monkeypatch, caplog):
    """A 400 naming records[i].<field> dropped the whole batch: one bad completion lost all the others."""
    callback = callback_with_completions(["a", "BAD1", "b", "BAD2", "c"])
    sent = refusing(monkeypatch, callback, bad={"BAD1", "BAD2"})
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.flush()
    assert sent == [
        ["a", "BAD1", "b", "BAD2", "c"],
        ["a", "b", "BAD2", "c"],
        ["a", "b", "c"],
    ]
    assert not callback.records
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2
    assert (
        "records[1], step 5 group 0 sample 1: completion: must be text" in warnings[0]
    )
    assert (
        "records[2], step 5 group 0 sample 3: completion: must be text" in warnings[1]
    )  # its index in the batch resent
    assert (
        "sending the other 3 again" in warnings[1] and "dropped it" not in caplog.text
    )


def test_a_batch_of_refused_records_is_tried_at_most_once_per_record(
    monkeypatch, caplog
):
    callback = callback_with_completions(["BAD1", "BAD2", "BAD3"])
    sent = refusing(monkeypatch, callback, bad={"BAD1", "BAD2", "BAD3"})
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.flush()
    assert len(sent) == 3 and sent[-1] == ["BAD3"] and not callback.records
    callback.flush()
    assert len(sent) == 3  # nothing left to send


@pytest.mark.parametrize(
    "fields",
    [
        {
            "records": ['send a JSON object {"records": [...]}']
        },  # the batch, no record of it
        {"records[7].completion": ["must be text"]},  # past the batch's end
        {
            "records[0].completion": ["must be text"],
            "non_field_errors": ["and something else"],
        },
    ],
)
def test_a_400_that_names_no_record_of_the_batch_drops_it_as_before(
    monkeypatch, caplog, fields
):
    callback = callback_with_completions(["a", "b"])
    body = {"error": {"code": "invalid", "message": "refused", "fields": fields}}
    answering(monkeypatch, callback, 400, "application/json", json.dumps(body).encode())
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.flush()
    assert (
        not callback.records
        and "Steer refused a batch, dropped it: HTTP 400: refused" in caplog.text
    )


def test_records_left_after_a_refusal_stay_buffered_when_steer_then_fails(
    monkeypatch, caplog
):
    """A 5xx on the resend keeps the records not refused for a later flush, without the refused one."""
    callback = callback_with_completions(["a", "BAD", "b"])
    refusing(monkeypatch, callback, bad={"BAD"})
    calls = []
    send = callback.client.session.request

    def then_down(method, url, **kwargs):
        calls.append(url)
        if len(calls) == 2:  # the resend without the refused record
            return unavailable_response(url)
        return send(method, url, **kwargs)

    monkeypatch.setattr(callback.client.session, "request", then_down)
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.flush()
    assert [r["completion"] for r in callback.records] == [
        "a",
        "b",
    ] and "Steer is unavailable" in caplog.text
    callback.flush()
    assert not callback.records and len(calls) == 3


def test_steer_itself_refusing_some_metric_points_keeps_the_others(
    live_server, credentials, caplog
):
    project, token = credentials
    client = steer_client.SteerClient(live_server.url, token)
    run = client.run_create(project=project.id, name="external")
    callback = steer_client.SteerCallback(
        live_server.url, token, project=project.id, client=client
    )
    callback.run_id = run["id"]
    # a buffer of 1,001 points, as a flush finds it (log_metrics would have flushed at 1,000)
    callback.points.extend(("loss", step, step / 1000) for step in range(1_000))
    callback.points.append(("loss", -3, 0.5))  # a step Steer refuses
    callback.points.insert(500, ("bad\x00key", 7, 1.0))  # a key Steer refuses
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.flush()
    assert list(
        MetricPoint.objects.filter(run_id=run["id"])
        .order_by("step")
        .values_list("step", flat=True)
    ) == list(range(1_000))
    assert not callback.points
    assert "points[500], 'bad\\x00key' at step 7: point: key must be" in caplog.text
    assert "'loss' at step -3: point: step must be" in caplog.text


def test_steer_itself_refusing_one_completion_keeps_the_others(
    live_server, credentials, caplog
):
    project, token = credentials
    client = steer_client.SteerClient(live_server.url, token)
    run = client.run_create(project=project.id, name="external")
    callback = steer_client.SteerCallback(
        live_server.url, token, project=project.id, client=client
    )
    callback.run_id = run["id"]
    callback.log_completions(
        2, ["p", "p", "p"], ["ok", "x" * 200_001, "fine"], [1.0, 0.0, 1.0]
    )  # too long for Steer
    with caplog.at_level("WARNING", logger="steer_client"):
        callback.flush()
    rows = list(
        Trajectory.objects.filter(run_id=run["id"])
        .order_by("sample_index")
        .values_list("sample_index", "completion")
    )
    assert rows == [(0, "ok"), (2, "fine")] and not callback.records
    assert (
        "records[1], step 2 group 0 sample 1: completion: is longer than 200000 characters"
        in caplog.text
    )
