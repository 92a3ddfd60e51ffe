"""A small client for Steer's REST API (stdlib + ``requests``; no Django).

    client = SteerClient("http://steer.local:8000", token="steer_…")
    run = client.run_create(project=3, name="my-trl-run")   # an external run, queued
    client.run_status(run["id"], "running")
    client.metrics_log(run["id"], [("reward", 1, 0.5), ("kl", 1, 0.01)])
    client.run_status(run["id"], "succeeded")
    for r in client.runs(project=3, status="succeeded"):   # every page, followed for you
        print(r["name"], r["progress"])
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import requests

METRIC_BATCH = 1_000  # points per request (the server takes up to STEER_METRIC_BATCH_LIMIT)
TRAJECTORY_BATCH = 500


def _scalar(value):
    """A numpy or torch scalar (``np.float32(0.5)``, a one-element tensor) as a Python number;
    anything else as it is."""
    if not isinstance(value, (int, float)) and callable(getattr(value, "item", None)):
        try:
            return value.item()
        except (TypeError, ValueError, RuntimeError):  # a tensor of several elements, say
            return value
    return value


_POINT_KEYS = frozenset({"key", "step", "value"})
_POINT_SHAPE = 'a (key, step, value) triple, or a dict {"key": ..., "step": ..., "value": ...}'


def _iso(value: str | date | datetime | None) -> str | None:
    """A date or datetime as the API reads it (ISO 8601); text as given, for the server to check."""
    return value.isoformat() if isinstance(value, date) else value


def _metric_point(i: int, point) -> list:
    """``[key, step, value]`` as JSON carries them, or ValueError naming ``points[i]``. A point is
    a (key, step, value) triple or, as the API also takes it, a dict of exactly those three keys;
    another dict (``{"step": 1, "loss": 0.5}``, one step's metrics) is refused with the shapes to
    use: unpacked as a triple it would have taken its keys for the point."""
    if isinstance(point, dict):
        if set(point) != _POINT_KEYS:
            one_step = ("; for one step's metrics {\"step\": s, name: value, ...}, send "
                        "[(name, s, value) for name, value in metrics.items()]"
                        if "step" in point and "key" not in point else "")
            raise ValueError(f"points[{i}]: must be {_POINT_SHAPE}, got a dict with keys "
                             f"{sorted(map(str, point))}{one_step}")
        key, step, value = point["key"], point["step"], point["value"]
    else:
        try:
            key, step, value = point
        except (TypeError, ValueError):
            raise ValueError(f"points[{i}]: must be {_POINT_SHAPE}, got {point!r}") from None
    if not isinstance(key, str):
        raise ValueError(f"points[{i}]: key must be a metric's name (a string), got {key!r}")  # noqa: TRY004 (one error for a bad point)
    step, value = _scalar(step), _scalar(value)
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise ValueError(f"points[{i}]: step must be a whole number, got {step!r}")  # noqa: TRY004 (one error for a bad point)
    try:
        finite = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise ValueError(f"points[{i}]: value must be a finite number, got {value!r}")
    return [key, int(step), float(value)]


def _artifact_url_path(path: str) -> str:
    """An artifact's path as it goes in the address: each segment quoted, and a '.' or '..'
    segment escaped, so that it reaches the server (which refuses it, naming ``path``) rather
    than being resolved away by the HTTP library into another path."""
    return "/".join(segment.replace(".", "%2E") if segment in (".", "..") else quote(segment, safe="")
                    for segment in path.split("/"))


# Codes of a SteerError whose answer was not Steer's API error (a proxy's or a login page, a URL
# that is not Steer's): its message holds the status and the start of the body that came.
NOT_STEERS_ANSWER = frozenset({"http_error", "not_json"})

# 5xx answers that the same request, sent again, would get again: 507, the server's disk is full
# (nothing was stored; it stays full until someone frees space). Raised at once, not retried.
NOT_RETRIED = frozenset({507})


class SteerError(Exception):
    """The server refused a request; ``status`` and ``error`` ({"code", "message", "fields"}) say why."""

    def __init__(self, status: int, error: dict):
        self.status, self.error = status, error
        super().__init__(f"HTTP {status}: {error.get('message', error)}")


class SteerClient:
    def __init__(self, url: str, token: str, *, timeout: float = 30.0, retries: int = 3):
        self.base = url.rstrip("/") + "/api/v1"
        self.timeout, self.retries = timeout, retries
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def close(self) -> None:
        """Close the kept-alive HTTP connections (a later request opens new ones)."""
        self.session.close()

    # -- transport --------------------------------------------------------------

    def request(self, method: str, path: str, *, json=None, params=None, headers=None, retry: bool = False,
                file: Path | None = None):
        """JSON in, JSON out. Idempotent writes (``retry=True``) are retried on 5xx (not 507, a full
        disk: ``NOT_RETRIED``) and network errors
        (a request that cannot be made, such as a body with NaN, is not a network error: it raises at once).
        ``file``: a local file sent as the raw body, streamed from disk (opened anew for each attempt)."""
        attempts = self.retries + 1 if retry or method == "GET" else 1
        for attempt in range(attempts):
            try:
                with open(file, "rb") if file is not None else contextlib.nullcontext() as data:
                    response = self.session.request(method, self.base + path, json=json, params=params, data=data,
                                                    headers=headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError):
                # the request could not be sent, or its answer was cut off on the way back
                if attempt + 1 == attempts:
                    raise
            else:
                if response.status_code < 500 or response.status_code in NOT_RETRIED or attempt + 1 == attempts:
                    break
            time.sleep(min(8.0, 0.5 * 2**attempt))
        return self._answer(method, response)

    def _answer(self, method: str, response):
        """The JSON body of ``response``, or SteerError with the API's error (or what came instead)."""
        try:
            body = response.json() if response.content else None
        except ValueError:  # not Steer's answer: a proxy's or a login page, or a URL that is not Steer's
            body = ValueError
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if not isinstance(error, dict):
                error = {"code": "http_error", "message": response.text[:500], "fields": {}}
            raise SteerError(response.status_code, error)
        if body is ValueError:
            raise SteerError(response.status_code, {
                "code": "not_json", "fields": {},
                "message": f"{method} {response.url} answered {response.headers.get('Content-Type', 'no type')}, "
                           f"not JSON: is {self.base} Steer's API? {response.text[:200]!r}"})
        return body

    def paginate(self, path: str, params: dict | None = None, *, page_size: int = 1000) -> Iterator[dict]:
        """Every result of a paged list (``/projects/``, ``/projects/<id>/runs/``, a run's
        ``/trajectories/`` ...), following each page's ``next`` link with the same filters;
        ``params`` are the list's filters (a list value repeats its parameter)."""
        params = {**(params or {}), "page_size": page_size}
        while True:
            page = self.request("GET", path, params=params)
            yield from page["results"]
            if not page.get("next"):
                return
            params = parse_qs(urlsplit(page["next"]).query)  # the filters and the cursor, as the server wrote them

    # -- resources ----------------------------------------------------------------

    def project_id(self, project: int | str) -> int:
        """A project id from its id, slug or name (among the caller's projects). An int is an id; a
        string is a slug or name first (a project may be named "2024"), else, if it is digits, an id."""
        if isinstance(project, int):
            return project
        for p in self.paginate("/projects/"):
            if project in (p["slug"], p["name"]):
                return p["id"]
        if project.isascii() and project.isdigit():
            return int(project)
        raise SteerError(404, {"code": "not_found", "message": f"no project {project!r} among yours"})

    def runs(self, *, project: int | str, status: str | None = None, kind: str | None = None,
             search: str | None = None, tag: str | None = None, where: str | None = None,
             created_after: str | date | datetime | None = None,
             created_before: str | date | datetime | None = None) -> Iterator[dict]:
        """The project's runs, newest first, every page; ``status``, ``kind``, ``search`` (a part
        of the name), ``tag``, ``where`` (conditions on settings and metrics, as MLflow's
        ``filter_string``: ``"config.optim.lr < 1e-5 and metrics.reward >= 0.8"``) and
        ``created_after`` / ``created_before`` (both included: a ``date`` or ISO date is its whole
        day in UTC, a ``datetime`` or ISO datetime its instant, a naive one read as UTC) filter them."""
        asked = {"status": status, "kind": kind, "search": search, "tag": tag, "where": where,
                 "created_after": _iso(created_after), "created_before": _iso(created_before)}
        filters = {k: v for k, v in asked.items() if v is not None}
        return self.paginate(f"/projects/{self.project_id(project)}/runs/", filters)

    def run_update(self, run_id: int, *, name: str | None = None, description: str | None = None,
                   tags: Sequence[str] | None = None) -> dict:
        """Set a run's name, description (Markdown notes) or tags (``tags`` replaces them); what is
        left None is left as it is. Answers the run."""
        asked = {"name": name, "description": description, "tags": None if tags is None else list(tags)}
        return self.request("PATCH", f"/runs/{int(run_id)}/", json={k: v for k, v in asked.items() if v is not None},
                            retry=True)

    def run(self, run_id: int) -> dict:
        """One run: its kind, status, progress, config and the rest of ``GET /runs/<id>/``."""
        return self.request("GET", f"/runs/{int(run_id)}/")

    def trajectories(self, run_id: int, *, step: int | None = None, step_min: int | None = None,
                     step_max: int | None = None, reward_min: float | None = None,
                     reward_max: float | None = None) -> Iterator[dict]:
        """The run's trajectories (prompt, completion, rewards, advantage ...), every page; one
        ``step`` or a ``step_min``/``step_max`` range, and a reward range."""
        asked = {"step": step, "step_min": step_min, "step_max": step_max, "reward_min": reward_min,
                 "reward_max": reward_max}
        filters = {k: v for k, v in asked.items() if v is not None}
        return self.paginate(f"/runs/{int(run_id)}/trajectories/", filters)

    def run_create(self, *, project: int | str, name: str, config: dict | None = None,
                   kind: str = "external", policy: int | None = None, dataset: int | None = None,
                   eval_dataset: int | None = None, idempotency_key: str | None = None) -> dict:
        """Create a run, retried on 5xx and network errors like the other writes: its
        ``Idempotency-Key`` (``idempotency_key``, else a new UUID for this call) makes the server
        answer a retry of a creation whose answer was lost with the run it created, not a second
        run. Pass the same key to a later call to make it a retry of this one.

        ``kind`` "external" (the default: a run your own trainer reports to, its ``config``
        recorded as given) or one Steer's workers run: "policy", "evaluation", "reward_model",
        "dpo" or "sft", launched with the project's ``policy``, ``dataset`` and ``eval_dataset``
        (ids) as the API's run creation takes them; a config the engine refuses raises
        SteerError 400 naming the field (``config.optim.lr``), and nothing is launched."""
        default = {"trainer": "external"} if kind == "external" else {}
        asked = {"name": name, "kind": kind, "config": config or default,
                 "policy": policy, "dataset": dataset, "eval_dataset": eval_dataset}
        body = {k: v for k, v in asked.items() if v is not None}
        key = idempotency_key or str(uuid.uuid4())
        return self.request("POST", f"/projects/{self.project_id(project)}/runs/", json=body,
                            headers={"Idempotency-Key": key}, retry=True)

    def sweep_create(self, *, project: int | str, name: str, sweep: dict, kind: str = "policy",
                     config: dict | None = None, policy: int | None = None, dataset: int | None = None,
                     eval_dataset: int | None = None, sweep_tag: str | None = None,
                     idempotency_key: str | None = None) -> list[dict]:
        """Launch a grid sweep of ``kind`` runs ("policy", "dpo", "sft" or "evaluation", which is swept
        over what it reads: ``rollout.temperature``, ``train.seed``...): one run per combination
        of the ``sweep``'s values (``{"optim.lr": [1e-6, 3e-6], "algorithm.beta": [0, 0.04]}``: up
        to two settings, each ``section.key`` or ``rewards[i].weight``, 2 to 8 values each, at most
        16 runs) set over ``config``, each named for its values and tagged ``sweep_tag`` (else
        ``sweep-`` and a short id). Answers the runs in the grid's order (``runs[0]["tags"]`` holds
        the tag). All or nothing: a bad grid or point raises SteerError 400 naming ``sweep``, and
        nothing is launched. Retried as ``run_create`` is, one ``Idempotency-Key`` covering the
        whole sweep: a retry answers the runs it launched, not a second sweep."""
        asked = {"name": name, "kind": kind, "config": config or {}, "sweep": sweep, "policy": policy,
                 "dataset": dataset, "eval_dataset": eval_dataset, "sweep_tag": sweep_tag}
        body = {k: v for k, v in asked.items() if v is not None}
        key = idempotency_key or str(uuid.uuid4())
        return self.request("POST", f"/projects/{self.project_id(project)}/runs/sweep/", json=body,
                            headers={"Idempotency-Key": key}, retry=True)

    def run_status(self, run_id: int, status: str, *, error: str | None = None,
                   current_step: int | None = None, total_steps: int | None = None) -> dict:
        """Move an external run through its states: "running" first (a new run is queued), then
        "succeeded", "failed" (``error`` says why) or "cancelled"; "running" again reports
        progress (``current_step``, ``total_steps``). An illegal move (a queued run straight to
        "succeeded", a finished one again) raises SteerError 409. Answers the run."""
        body = {"status": status}
        if error is not None:
            body["error"] = error[:20_000]
        if current_step is not None:
            body["current_step"] = int(current_step)
        if total_steps is not None:
            body["total_steps"] = int(total_steps)
        return self.request("POST", f"/runs/{run_id}/status/", json=body)

    def metrics_log(self, run_id: int, points: Sequence[tuple[str, int, float]]) -> int:
        """Send (key, step, value) points in batches; returns how many the server wrote.

        Steps and values may be numpy or torch scalars (``np.float32``, ``loss.detach()``), sent
        as Python numbers. A value that is not a finite number, or a step that is not a whole
        number, raises ValueError naming the point (JSON has no NaN or infinity, and the server
        refuses them), before anything is sent. A point may also be a dict of exactly ``key``,
        ``step`` and ``value``, as the API takes it; any other dict raises ValueError naming the
        point and the shapes to use, and ``points`` itself must be a list (or other sequence) of
        points, not one dict or string (TypeError), before anything is sent."""
        if isinstance(points, (dict, str, bytes)):
            raise TypeError(f"points must be a list of (key, step, value) triples, got a {type(points).__name__}"
                            + ("; for one step's metrics {\"step\": s, name: value, ...}, send "
                               "[(name, s, value) for name, value in metrics.items()]"
                               if isinstance(points, dict) else ""))
        checked = [_metric_point(i, point) for i, point in enumerate(points)]
        written = 0
        for start in range(0, len(checked), METRIC_BATCH):
            chunk = checked[start:start + METRIC_BATCH]
            written += self.request("POST", f"/runs/{run_id}/metrics/", json={"points": chunk}, retry=True)["written"]
        return written

    def trajectories_log(self, run_id: int, records: Sequence[dict]) -> int:
        """Send an external run's sampled completions, ``TRAJECTORY_BATCH`` records a request, each
        as ``POST /runs/<id>/trajectories/`` takes it (``step``, ``group_index``, ``sample_index``,
        ``prompt``, ``completion``, ``reward``, ...); answers how many the server wrote. A batch the
        server refuses raises SteerError 400 naming ``records[i].<field>``, and the batches before
        it stay written."""
        written = 0
        for start in range(0, len(records), TRAJECTORY_BATCH):
            chunk = list(records[start:start + TRAJECTORY_BATCH])
            written += self.request("POST", f"/runs/{run_id}/trajectories/", json={"records": chunk},
                                    retry=True)["written"]
        return written

    def log_artifact(self, run_id: int, local_path: str | os.PathLike, artifact_path: str | None = None) -> dict:
        """Attach a local file to the run, as MLflow's ``log_artifact``: stored at ``artifact_path``
        (a relative path with '/' between folders, e.g. ``eval/report.json``; the file's own name
        when None), replacing the file the run holds there. Streamed from disk, never read whole.
        Answers the artifact (``path``, ``size_bytes``, ``sha256``, ...); SteerError 400 naming
        ``path`` for a bad path, 413 over the server's size limits or for a new path to a run
        that holds as many files as it may."""
        local = Path(local_path)
        if not local.is_file():
            raise FileNotFoundError(f"{local}: no such file to log as an artifact")
        path = artifact_path if artifact_path is not None else local.name
        return self.request("PUT", f"/runs/{int(run_id)}/artifacts/{_artifact_url_path(path)}", file=local,
                            headers={"Content-Type": "application/octet-stream"}, retry=True)

    def artifacts(self, run_id: int) -> list[dict]:
        """The run's artifacts by path: ``path``, ``size_bytes``, ``sha256``, ``content_type``, ``created_at``."""
        return list(self.paginate(f"/runs/{int(run_id)}/artifacts/"))

    def download_artifact(self, run_id: int, artifact_path: str, dst_path: str | os.PathLike | None = None) -> Path:
        """Download the run's artifact to ``dst_path`` (a file, or a folder to put it in under its
        own name; the working folder when None), a chunk at a time; answers the file's path. The
        file appears complete or not at all."""
        url = f"{self.base}/runs/{int(run_id)}/artifacts/{_artifact_url_path(artifact_path)}"
        name = artifact_path.rsplit("/", 1)[-1]
        target = Path(dst_path) if dst_path is not None else Path.cwd()
        if target.is_dir():
            target = target / name
        with self.session.get(url, stream=True, timeout=self.timeout) as response:
            if response.status_code >= 400:
                self._answer("GET", response)
            partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
            try:
                with open(partial, "wb") as out:
                    out.writelines(response.iter_content(1024 * 1024))
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        return target

    def metric_history(self, run_ids: Iterable[int], keys: Iterable[str] = (), *, max_points: int = 1000) -> list:
        """``GET /metrics/history/``: one series per run and key (every key when ``keys`` is empty),
        each ``{"run", "key", "steps", "values", ...}``, downsampled to ``max_points`` (≤ 10,000) a
        series for charts: a longer series keeps each bucket's first, last, min and max points only.
        Every point: ``metrics``."""
        params = {"run": list(run_ids), "key": list(keys), "max_points": max_points}
        return self.request("GET", "/metrics/history/", params=params)["results"]

    def metrics(self, run_id: int, key: str | None = None, *, step_min: int | None = None,
                step_max: int | None = None) -> Iterator[dict]:
        """Every raw point of a run (of ``key`` only, and within the steps, when given), in (key, step)
        order, page after page, as MLflow's ``get_metric_history``: ``{"run", "key", "step", "value",
        "recorded_at"}``."""
        asked = {"key": key, "step_min": step_min, "step_max": step_max}
        return self.paginate(f"/runs/{int(run_id)}/metrics/", {k: v for k, v in asked.items() if v is not None})

    def metric_latest(self, run_ids: Iterable[int], keys: Iterable[str] = ()) -> list:
        """Each run's last value (at its highest step) of each metric, or of ``keys``:
        ``[{"run", "key", "step", "value"}]``."""
        return self.request("GET", "/metrics/latest/", params={"run": list(run_ids), "key": list(keys)})["results"]
