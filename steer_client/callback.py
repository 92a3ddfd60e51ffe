"""Report a ``transformers`` / TRL training run to Steer with one line.

    trainer.add_callback(SteerCallback("http://steer:8000", token, project="my-project"))
    # or, so that GRPO completions are reported too:
    steer_client.watch(trainer, url="http://steer:8000", token=token, project="my-project")

At the start of training an ``external`` run is created in the project and set running;
every ``on_log`` adds the logged numbers (loss, learning_rate, reward, kl, ...) to a buffer
that is sent in batches; at the end the buffer is flushed and the run marked succeeded.
If the process dies with the run unfinished (an exception out of ``trainer.train()``), an
exit hook marks it failed with the error. A network failure never stops training: points
stay buffered (up to ``max_buffer``) and go with the next flush, as they do when Steer answers
5xx or 429 (too many requests) or the answer is not Steer's (a proxy's or a login page; the warning gives its status and
start); a batch Steer itself refuses (its 4xx error) is dropped, except that only the metric
points or trajectories a 400 names (``points[i]``, ``records[i].<field>``) are, with a warning,
and the rest of the batch is sent again; refused metric points are dropped alone, the
trajectories still sent. If Steer does not answer at
the start, the run is created at the first flush that reaches it. A refusal at the start (a
bad token, an unknown project) raises before training begins.

Completions: TRL's GRPOTrainer keeps the last generation's prompts, completions, rewards
and advantages in ``trainer._logs``; with ``watch(trainer, ...)`` the callback sends them as
trajectories of the step at every log. Any other trainer can call ``log_completions``; a loop
without a transformers Trainer calls ``start()`` first (nothing is sent before), then
``log_metrics`` and ``log_completions``, and ``finish("succeeded")`` at the end. A
conversational prompt goes as its chat messages, so what is built from the run (annotation
tasks, preference pairs, exports) stays conversational.
"""

from __future__ import annotations

import atexit
import logging
import math
import re
import sys
import time
import uuid
from collections import deque
from collections.abc import Sequence
from numbers import Real

import requests
from transformers import TrainerCallback

from steer_client.client import (
    METRIC_BATCH,
    NOT_STEERS_ANSWER,
    TRAJECTORY_BATCH,
    SteerClient,
    SteerError,
)

logger = logging.getLogger("steer_client")


class _Unreadable(Exception):
    """A number that could not be read as a float (an int past ~1e308, a scalar whose
    ``item()`` raises); the cause is chained."""


def _read_number(value) -> float | None:
    """``value`` as a finite float; None for what is not a number (a string, a bool, a
    tensor or array of several elements, NaN, inf). Raises _Unreadable for a number whose
    conversion raised, so that a caller can say so."""
    if isinstance(value, bool):
        return None
    if hasattr(value, "item") and callable(value.item):  # tensors, numpy scalars
        try:
            value = value.item()
        except (
            TypeError,
            ValueError,
            RuntimeError,
        ):  # not one element (or a meta tensor): not a number
            return None
        except Exception as exc:  # a scalar type of its own whose item() fails
            raise _Unreadable(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(value, Real):
        return None
    try:
        number = float(value)
    except Exception as exc:  # OverflowError: an int or Fraction past the float range
        raise _Unreadable(f"{type(exc).__name__}: {exc}") from exc
    return number if math.isfinite(number) else None


def _number(value) -> float | None:
    """``value`` as a finite float, else None; never raises (a logger must not stop training)."""
    try:
        return _read_number(value)
    except _Unreadable:
        return None


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value if not isinstance(value, float) or math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _content(content) -> str:
    """A message's content as text: a string, or, in the multimodal form, a list of parts
    (``{"type": "text", "text": ...}``; an image or other part is named by its type)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "")
            if part.get("type") == "text"
            else f"[{part.get('type', 'part')}]"
            for part in content
            if isinstance(part, dict)
        )
    return str(content)


def _text(value) -> str:
    """A prompt or completion as text: chat messages are joined as 'role: content'."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        return "\n\n".join(
            f"{m.get('role', '')}: {_content(m.get('content'))}" for m in value
        )
    return str(value)


CHAT_ROLES = {
    "system",
    "user",
    "assistant",
    "tool",
}  # the roles Steer stores a chat prompt with


def _prompt(value):
    """A prompt as Steer's API takes it: a conversational one (TRL: ``[{"role", "content"}, ...]``)
    as messages, each content as text (multimodal parts as ``_content`` writes them), so tasks,
    pairs and exports made from the run stay conversational; anything else as text."""
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and m.get("role") in CHAT_ROLES for m in value)
    ):
        return [
            {"role": m["role"], "content": _content(m.get("content"))} for m in value
        ]
    return _text(value)


def _completion_text(value) -> str:
    """A completion as text. A conversational one (TRL: ``[{"role": "assistant", "content": ...}]``)
    is the assistant's words alone, as Steer's own runs store them; a turn that holds other
    roles (tool calls and their results) keeps each message's role."""
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) for m in value)
        and all(m.get("role") == "assistant" for m in value)
    ):
        return "\n".join(_content(m.get("content")) for m in value)
    return _text(value)


def _refused_items(exc: SteerError, size: int, what: str) -> dict[int, tuple[str, str]]:
    """The items of a batch of ``size`` that Steer's 400 names (its fields ``records[i].<field>``
    for ``what`` "records", ``points[i]`` for "points"), by index, each with the field and Steer's
    message; empty when the refusal is not one of Steer's 400s or names anything but items of the
    batch (then no item can be blamed)."""
    if (
        exc.status != 400
        or exc.error.get("code") in NOT_STEERS_ANSWER
        or not isinstance(exc.error.get("fields"), dict)
    ):
        return {}
    pattern = re.compile(rf"{what}\[(\d+)\](?:\.(.+))?")
    refused = {}
    for name, messages in exc.error["fields"].items():
        match = pattern.fullmatch(str(name))
        if match is None or int(match.group(1)) >= size:
            return {}
        message = messages[0] if isinstance(messages, list) and messages else messages
        refused.setdefault(
            int(match.group(1)), (match.group(2) or what[:-1], str(message))
        )
    return refused


def _slot(record: dict) -> str:
    """A trajectory record by its place in the run, as a warning names it."""
    return (
        f"step {record.get('step')} group {record.get('group_index')} sample {record.get('sample_index')}"
        if isinstance(record, dict)
        else repr(record)[:80]
    )


def _point_slot(point: tuple) -> str:
    """A metric point by its key and step, as a warning names it."""
    return f"{point[0]!r} at step {point[1]}"


def _refuses_data(exc: SteerError) -> bool:
    """Steer's own answer that it refuses the data sent (a 4xx other than 429, not a proxy's or a
    login page's): sending it again would be refused again."""
    return (
        exc.status < 500
        and exc.status != 429
        and exc.error.get("code") not in NOT_STEERS_ANSWER
    )


class SteerCallback(TrainerCallback):
    def __init__(
        self,
        url: str,
        token: str,
        project: int | str,
        run_name: str | None = None,
        *,
        config: dict | None = None,
        flush_every_s: float = 5.0,
        flush_points: int = 1000,
        max_buffer: int = 200_000,
        client: SteerClient | None = None,
    ):
        self.client = client or SteerClient(url, token)
        self.project, self.run_name, self.config = project, run_name, config
        self.flush_every_s, self.flush_points = flush_every_s, flush_points
        self.points: deque = deque(maxlen=max_buffer)
        self.records: deque = deque(maxlen=max_buffer // 10)
        self.run_id: int | None = None
        self._pending_run: dict | None = (
            None  # a run to create once Steer answers (it did not at the start)
        )
        self.finished = False
        self.trainer = None
        self._last_flush = time.monotonic()
        self._sent_generations: set[tuple[int, int]] = set()
        self._step: int | None = None  # the trainer's global step at the last log
        self._step_reported: int | None = None
        self._warned_not_started = False
        self._warned_unreadable: set[str] = set()  # metric keys already warned of

    # -- trainer events --------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or self.run_id is not None:
            return
        name = (
            self.run_name
            or getattr(args, "run_name", None)
            or str(args.output_dir).rstrip("/").rsplit("/", 1)[-1]
        )
        config = self.config or {
            "trainer": type(self.trainer).__name__ if self.trainer else "transformers",
            "args": _jsonable(args.to_dict()),
        }
        self._begin(name, config, state.max_steps or None)

    def start(self, *, total_steps: int | None = None) -> None:
        """Start the run from a training loop of your own, without a transformers Trainer (which
        calls ``on_train_begin`` for you): creates the ``external`` run (named ``run_name``, else
        "run"; its config ``config``, else ``{"trainer": "custom"}``) and sets it
        running, as at a Trainer's start. Then ``log_metrics`` and ``log_completions`` at each
        step (sent in batches, as they fill or every ``flush_every_s``), and ``finish("succeeded")``
        at the end, which sends what is left; a process that exits first marks the run failed.
        Before ``start``, what is logged is kept, and sent once the run exists. A refusal (a bad
        token, an unknown project) raises SteerError; Steer not answering does not."""
        if self.run_id is not None or self._pending_run is not None:
            return
        self._begin(
            self.run_name or "run", self.config or {"trainer": "custom"}, total_steps
        )

    def _begin(self, name: str, config: dict, total_steps: int | None) -> None:
        # One key for this run: a creation retried at a later flush (its answer lost) gets the same run.
        self._pending_run = {
            "name": name,
            "config": config,
            "total_steps": total_steps,
            "idempotency_key": str(uuid.uuid4()),
        }
        try:
            self._create_run()
        except SteerError as exc:
            if (
                exc.status < 500
            ):  # refused (a bad token, an unknown project): say so before training starts
                self._pending_run = None
                raise
            # Steer (or the proxy before it: 502, 503) is down, as good as unreachable
            logger.warning(
                "Steer answered %s to creating the run; training goes on, and the run is "
                "created at a later flush: %s",
                exc.status,
                exc,
            )
        except (
            requests.RequestException
        ) as exc:  # a network failure never stops training
            logger.warning(
                "could not reach Steer to create the run; training goes on, and the run is "
                "created at a later flush: %s",
                exc,
            )
        atexit.register(self._exit_hook)

    def _create_run(self) -> None:
        pending = self._pending_run
        if self.run_id is None:
            self.run_id = self.client.run_create(
                project=self.project,
                name=pending["name"],
                config=pending["config"],
                idempotency_key=pending["idempotency_key"],
            )["id"]
            logger.info("Steer run %s created", self.run_id)
        self.client.run_status(
            self.run_id, "running", total_steps=pending["total_steps"]
        )
        self._pending_run = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if (self.run_id is None and self._pending_run is None) or not logs:
            return
        step = self._step = int(state.global_step)
        for key, value in logs.items():
            number = self._metric_number(key, value)
            if number is not None:
                self.points.append((str(key)[:200], step, number))
        if self.trainer is not None:
            self._collect_trl_completions(step)
        self._flush_if_due()

    def on_train_end(self, args, state, control, **kwargs):
        if (self.run_id is None and self._pending_run is None) or self.finished:
            return
        self.finish(
            "succeeded", current_step=state.global_step
        )  # sends what is buffered first

    # -- for any training loop -------------------------------------------------------

    def log_metrics(self, step: int, metrics: dict) -> None:
        """Queue one step's numbers (``{"loss": 0.5, ...}``; anything not a number is skipped, as is a
        number that cannot be read as a float, with one warning per key)."""
        self._warn_if_not_started()
        for key, value in metrics.items():
            number = self._metric_number(key, value)
            if number is not None:
                self.points.append((str(key)[:200], int(step), number))
        self._flush_if_due()

    def log_completions(
        self,
        step: int,
        prompts: Sequence,
        completions: Sequence,
        rewards: Sequence,
        *,
        reward_components: dict[str, Sequence] | None = None,
        advantages: Sequence | None = None,
    ) -> None:
        """Queue sampled completions of one step as trajectories.

        Consecutive equal prompts form one group (GRPO samples a group per prompt), so each
        completion's (group_index, sample_index) follows from the order given. A reward that is
        no finite number is stored as 0.0, with one warning.
        """
        self._warn_if_not_started()
        group, sample, previous = -1, 0, object()
        for i, (prompt, completion, reward) in enumerate(
            zip(prompts, completions, rewards)
        ):
            prompt_text = _text(prompt)
            if prompt_text != previous:
                group, sample, previous = group + 1, 0, prompt_text
            else:
                sample += 1
            value = _number(reward)
            if value is None:
                self._warn_reward_not_a_number(step, i, reward)
            record = {
                "step": int(step),
                "group_index": group,
                "sample_index": sample,
                "prompt": _prompt(prompt),
                "completion": _completion_text(completion),
                "reward": 0.0 if value is None else value,
            }
            if reward_components:
                record["rewards"] = {
                    name: v
                    for name, values in reward_components.items()
                    if i < len(values) and (v := _number(values[i])) is not None
                }
            if (
                advantages is not None
                and i < len(advantages)
                and _number(advantages[i]) is not None
            ):
                record["advantage"] = _number(advantages[i])
            self.records.append(record)
        if (
            self.trainer is None
        ):  # from a loop of the user's (on_log flushes a Trainer's after its points)
            self._flush_if_due()

    def _flush_if_due(self) -> None:
        if (
            len(self.points) >= self.flush_points
            or time.monotonic() - self._last_flush >= self.flush_every_s
        ):
            self.flush()

    def _metric_number(self, key, value) -> float | None:
        """A logged value as a point's number, or None to skip it. A number that cannot be read
        (an int past the float range, a scalar whose ``item()`` raises) is skipped as a
        non-number is, with one warning per key: it never raises into the training loop."""
        try:
            return _read_number(value)
        except _Unreadable as exc:
            if str(key) not in self._warned_unreadable:
                self._warned_unreadable.add(str(key))
                logger.warning(
                    "metric %r: could not read %s as a number (%s), skipped; later values of "
                    "it that cannot be read are skipped without a word",
                    str(key)[:200],
                    type(value).__name__,
                    exc,
                )
            return None

    def _warn_reward_not_a_number(self, step, index: int, reward) -> None:
        """Said once: a completion's reward that is no finite number (None, NaN, text) is stored
        as 0.0, as TRL's nansum makes a reward every function left out, and the trajectory pages
        would show that 0.0 as if it had been scored."""
        if "reward of log_completions" in self._warned_unreadable:
            return
        self._warned_unreadable.add("reward of log_completions")
        logger.warning(
            "log_completions at step %s: completion %d's reward %s is not a finite number; it "
            "is stored as 0.0 (later ones are too, without a word)",
            step,
            index,
            repr(reward)[:80],
        )

    def _warn_if_not_started(self) -> None:
        """Said once: without a run nothing is sent (it was lost without a word at the process's exit)."""
        if (
            self.run_id is None
            and self._pending_run is None
            and not self._warned_not_started
        ):
            self._warned_not_started = True
            logger.warning(
                "SteerCallback has no run yet, so nothing is sent: what is logged is kept until it "
                "has one. In a loop of your own, call start() first; a transformers Trainer starts "
                "the run when training begins"
            )

    def flush(self) -> None:
        """Send what is buffered; on failure keep it for the next flush (training goes on)."""
        self._last_flush = time.monotonic()
        if self.run_id is None and self._pending_run is None:
            return
        try:
            if self._pending_run is not None:
                self._create_run()
            self._send_points()
            self._send_records()
        except SteerError as exc:
            if (
                self._pending_run is not None
            ):  # the run could not be created: nothing can be sent
                logger.warning(
                    "Steer refused to create the run, keeping %d points: %s",
                    len(self.points),
                    exc,
                )
            elif _refuses_data(
                exc
            ):  # a batch of trajectories (the points went through, or were dropped above)
                logger.warning("Steer refused a batch, dropped it: %s", exc)
                self.records.clear()
            elif (
                exc.status == 429
            ):  # too many requests: later, the same batch goes through
                logger.warning(
                    "Steer asked to slow down, keeping %d points for later: %s",
                    len(self.points),
                    exc,
                )
            elif (
                exc.status < 500
            ):  # not Steer's answer (a proxy's or a login page): nothing refused the data
                logger.warning(
                    "the answer was not Steer's, keeping %d points for later: %s",
                    len(self.points),
                    exc,
                )
            else:
                logger.warning(
                    "Steer is unavailable, keeping %d points for later: %s",
                    len(self.points),
                    exc,
                )
        except Exception as exc:  # noqa: BLE001 - a reporting failure must never stop training
            logger.warning(
                "could not reach Steer, keeping %d points for later: %s",
                len(self.points),
                exc,
            )
        else:
            self._report_progress()

    def _send_points(self) -> None:
        """Send the buffered metric points, a request's worth (``METRIC_BATCH``) at a time, a batch
        Steer refuses for points it names (a 400 naming ``points[i]``) again without them. A
        refusal that names no point of the batch drops every buffered point (sent again, they would
        be refused again and block every flush); the trajectories, never sent, go on."""
        while self.points:
            batch = [
                self.points.popleft()
                for _ in range(min(METRIC_BATCH, len(self.points)))
            ]
            try:
                self._send_without_refused(
                    batch,
                    self.points,
                    self.client.metrics_log,
                    "points",
                    "metric points",
                    _point_slot,
                )
            except SteerError as exc:
                if not _refuses_data(exc):
                    raise
                logger.warning("Steer refused a batch, dropped it: %s", exc)
                self.points.clear()
                return

    def _send_records(self) -> None:
        """Send the buffered trajectories, a request's worth (``TRAJECTORY_BATCH``) at a time, a batch
        Steer refuses for records it names (a 400 naming ``records[i].<field>``) again without them;
        a refusal that names no record of the batch raises, as any other failure (``flush`` says
        what becomes of the buffer)."""
        while self.records:
            batch = [
                self.records.popleft()
                for _ in range(min(TRAJECTORY_BATCH, len(self.records)))
            ]
            self._send_without_refused(
                batch,
                self.records,
                self.client.trajectories_log,
                "records",
                "trajectories",
                _slot,
            )

    def _send_without_refused(
        self, batch: list, buffer: deque, send, what: str, noun: str, slot
    ) -> None:
        """``send(run_id, batch)``; when Steer refuses items of the batch it names, logs a warning
        naming each (index, ``slot(item)``, field, Steer's message) and sends the others again, each
        try one item or more fewer, so at most as many tries as the batch has items. On any other
        failure the items left go back in front of ``buffer``, in order, and it raises. ``what``:
        "points" or "records", as Steer's 400 names them."""
        try:
            for _ in range(len(batch)):
                try:
                    send(self.run_id, batch)
                    return
                except SteerError as exc:
                    refused = _refused_items(exc, len(batch), what)
                    if not refused:
                        raise
                    logger.warning(
                        "Steer refused %d of a batch of %d %s, dropped them (%s); "
                        "sending the other %d again",
                        len(refused),
                        len(batch),
                        noun,
                        "; ".join(
                            f"{what}[{i}], {slot(batch[i])}: {field}: {message}"
                            for i, (field, message) in sorted(refused.items())
                        ),
                        len(batch) - len(refused),
                    )
                    batch = [item for i, item in enumerate(batch) if i not in refused]
                    if not batch:
                        return
        except BaseException:
            buffer.extendleft(
                reversed(batch)
            )  # kept, as the caller decides: in front, in order
            raise

    def _report_progress(self) -> None:
        """The trainer's step, when it moved since the last report, so that the run page's progress
        bar moves while it trains (it stood at 0 until the end)."""
        if (
            self.run_id is None
            or self._pending_run is not None
            or self._step in (None, self._step_reported)
        ):
            return
        try:
            self.client.run_status(self.run_id, "running", current_step=self._step)
        except Exception as exc:  # noqa: BLE001 - progress is a nicety; a failure must never stop training
            logger.info("could not report the run's progress to Steer: %s", exc)
        else:
            self._step_reported = self._step

    def finish(
        self, status: str, *, error: str | None = None, current_step: int | None = None
    ) -> None:
        """Send what is still buffered, then end the run: ``status`` "succeeded", "failed" (with
        ``error``) or "cancelled"."""
        if self.finished:
            return
        self.flush()
        if self.run_id is None:
            return
        self.finished = True
        try:
            self.client.run_status(
                self.run_id, status, error=error, current_step=current_step
            )
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not report the run's end to Steer: %s", exc)
        finally:
            self.client.close()  # the run is over: release the kept-alive connection

    # -- internals ---------------------------------------------------------------------

    def _exit_hook(self) -> None:
        if (self.run_id is None and self._pending_run is None) or self.finished:
            return
        error = getattr(sys, "last_value", None)
        message = (
            f"{type(error).__name__}: {error}"
            if error
            else "the training process exited before the end"
        )
        self.finish("failed", error=message)  # sends what is buffered first

    def _collect_trl_completions(self, step: int) -> None:
        """TRL GRPOTrainer's rolling buffers of the last generation (``trainer._logs``), if any."""
        logs = getattr(self.trainer, "_logs", None)
        if not isinstance(logs, dict) or not logs.get("completion"):
            return
        prompts, completions = list(logs.get("prompt", [])), list(logs["completion"])
        rewards_by_name = {
            name: list(values) for name, values in (logs.get("rewards") or {}).items()
        }
        weights = self._reward_weights(len(rewards_by_name))
        # TRL's reward: the weighted sum of the functions' rewards, a function that returned
        # None (NaN) left out (nansum)
        totals = [
            sum(
                weight * number
                for weight, values in zip(weights, rewards_by_name.values())
                if i < len(values) and (number := _number(values[i])) is not None
            )
            for i in range(len(completions))
        ]
        marker = (step, len(completions))
        if marker in self._sent_generations or len(prompts) != len(completions):
            return
        self._sent_generations.add(marker)
        self.log_completions(
            step,
            prompts,
            completions,
            totals,
            reward_components=rewards_by_name,
            advantages=list(logs.get("advantages", [])) or None,
        )

    def _reward_weights(self, count: int) -> list[float]:
        """TRL's ``reward_weights`` (one per reward function; all 1 unless the config sets them)."""
        weights = getattr(self.trainer, "reward_weights", None)
        weights = weights.tolist() if hasattr(weights, "tolist") else weights
        if isinstance(weights, (list, tuple)) and len(weights) == count:
            numbers = [_number(w) for w in weights]
            if all(n is not None for n in numbers):
                return numbers
        return [1.0] * count


def watch(
    trainer,
    *,
    url: str,
    token: str,
    project: int | str,
    run_name: str | None = None,
    **options,
) -> SteerCallback:
    """Add a SteerCallback to ``trainer`` that can also read TRL's logged completions."""
    callback = SteerCallback(url, token, project, run_name, **options)
    callback.trainer = trainer
    trainer.add_callback(callback)
    return callback
