"""The data a reward-model, DPO or SFT run trains on, kept by its first attempt and read back by
every later one (``webapp.rewards.data_snapshots``): the file's round trip, what a damaged file
does, and runs resumed after their labels changed."""

import logging
import math
import uuid

import pytest

from tests.factories import make_policy, make_project, make_task, make_user
from webapp.experiments import execution
from webapp.experiments.execution import runs_release
from webapp.experiments.models import MetricPoint, Run, RunKind, RunStatus
from webapp.experiments.services import run_execute, run_folder_remove, run_launch
from webapp.feedback.labelling import label_submit, label_undo
from webapp.feedback.review import label_reject, label_restore
from webapp.projects.models import Membership, Role
from webapp.rewards.data_snapshots import (
    run_training_data,
    snapshot_items,
    snapshot_lines,
    snapshot_path,
    snapshot_read,
    snapshot_write,
)
from webapp.rewards.errors import DataSnapshotError
from webapp.rewards.models import RewardModel
from webapp.rewards.selectors import dpo_pairs, preference_records, sft_examples
from workers.engine.checkpoint import latest_checkpoint
from workers.engine.dpo import PreferencePair
from workers.engine.rm_trainer import PreferenceRecord
from workers.engine.sft import SFTExample

CHAT = [{"role": "system", "content": "Réponds en français, brièvement. 🙂"},
        {"role": "user", "content": "Line one\nline two\u2028and a \"quote\" \\ backslash"}]
ODD = "naïve café — 日本語 \U0001F600 tab\there\r\nnull\x00 end \ud800"  # a lone surrogate too

ITEMS = {
    "preference_pairs": [PreferencePair(CHAT, ODD, "b"), PreferencePair("plain ✓", "aa", ""),
                         PreferencePair([], "x", "y")],
    "sft_examples": [SFTExample(CHAT, ODD), SFTExample("prompt", "a\nb")],
    "preference_records": [PreferenceRecord(CHAT, [ODD, "b", "c"], [[2], [0, 1]], 0.33),
                           PreferenceRecord("p", ["a", "b"], [[0], [1]]),
                           PreferenceRecord("q", ["a", "b"], [[0, 1]], 3),
                           PreferenceRecord("r", ["a", "b"], [[1], [0]], 1e-300)],
}
DATA = {"source": "labels", "through_label": 41}


def snapshot(kind, items=None, data=DATA) -> bytes:
    return b"".join(snapshot_lines(kind, ITEMS[kind] if items is None else items, data))


# --- the file, pure --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(ITEMS))
def test_each_kind_comes_back_exactly_as_it_went_chat_prompts_unicode_and_margins_included(kind):
    content = snapshot(kind)
    items = snapshot_items(kind, content.splitlines(keepends=True), DATA)
    assert items == ITEMS[kind]
    for back, sent in zip(items, ITEMS[kind], strict=True):
        assert type(back) is type(sent)
        for name, value in vars(sent).items():
            assert type(getattr(back, name)) is type(value)  # an int margin stays an int, a list a list
    assert content.isascii() and content.count(b"\n") == len(ITEMS[kind]) + 2  # one line each, header and end


def test_an_empty_list_and_a_nan_margin_come_back_too():
    assert snapshot_items("preference_pairs", snapshot("preference_pairs", []).splitlines(True)) == []
    back, = snapshot_items("preference_records", snapshot(
        "preference_records", [PreferenceRecord("p", ["a", "b"], [[0], [1]], math.nan)]).splitlines(True))
    assert math.isnan(back.margin)


def test_an_object_of_another_kind_is_not_written():
    with pytest.raises(TypeError, match="item 1 is a SFTExample, not a PreferencePair"):
        snapshot("preference_pairs", [PreferencePair("p", "a", "b"), SFTExample("p", "a")])


def cut(content: bytes, at: int) -> list[bytes]:
    return content[:at].splitlines(keepends=True)


@pytest.mark.parametrize(("damage", "words"), [
    (lambda c: cut(c, len(c) - 1), "its end (after 3 pairs) is not a whole line"),
    (lambda c: c.splitlines(True)[:-1], "its end (after 3 pairs) is missing"),
    (lambda c: c.splitlines(True)[:2], "cut short: 1 of its 3 pairs, then nothing"),
    (lambda c: cut(c, len(c.splitlines(True)[0]) + 10), "cut short: pair 0 is not a whole line"),
    (lambda c: [], "cut short: its header is missing"),
    (lambda c: [c.splitlines(True)[0], b'{"prompt":"p","chosen":"a"}\n'], "pair 0 is not a PreferencePair"),
    (lambda c: c.replace(b'"aa"', b'"ab"').splitlines(True), "not those it was written with"),
    (lambda c: (c + c.splitlines(True)[1]).splitlines(True), "goes on after its end"),
    (lambda c: c.replace(b'"count":3', b'"count":2').splitlines(True), "does not end after its 2 pairs"),
    (lambda c: [b"\xff\xfe{}\n", *c.splitlines(True)[1:]], "its header is not JSON"),
    (lambda c: [b'{"prompt": "p"}\n'], "not a Steer run data snapshot"),
    (lambda c: c.replace(b'"version":1', b'"version":2').splitlines(True), "version 2 of the format"),
])
def test_a_damaged_snapshot_is_refused_saying_what_is_wrong(damage, words):
    with pytest.raises(DataSnapshotError, match="^.*" + words.replace("(", r"\(").replace(")", r"\)")):
        snapshot_items("preference_pairs", damage(snapshot("preference_pairs")), DATA)


def test_a_snapshot_of_another_kind_or_other_data_is_refused():
    content = snapshot("sft_examples").splitlines(True)
    with pytest.raises(DataSnapshotError, match="holds 'sft_examples', not 'preference_pairs'"):
        snapshot_items("preference_pairs", content)
    with pytest.raises(DataSnapshotError, match="written for the data .*'through_label': 41.*not this run's"):
        snapshot_items("sft_examples", content, {"source": "labels", "through_label": 40})


# --- the file on disk ------------------------------------------------------------------------

def test_it_is_written_whole_under_its_name_leaving_no_temporary_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / ".pairs.jsonl.abc123.tmp").write_bytes(b"half a write a killed worker left")
    path = snapshot_write(tmp_path, "preference_pairs", ITEMS["preference_pairs"], DATA)
    assert path == tmp_path / "data" / "pairs.jsonl" == snapshot_path(tmp_path, "preference_pairs")
    assert sorted(p.name for p in path.parent.iterdir()) == ["pairs.jsonl"]
    assert snapshot_read(tmp_path, "preference_pairs", DATA) == ITEMS["preference_pairs"]
    assert snapshot_read(tmp_path, "sft_examples") is None  # none of that kind


def test_a_write_that_fails_leaves_the_earlier_snapshot_and_no_temporary_file(tmp_path):
    snapshot_write(tmp_path, "preference_pairs", ITEMS["preference_pairs"][:1], DATA)
    with pytest.raises(TypeError):
        snapshot_write(tmp_path, "preference_pairs", [PreferencePair("p", "a", "b"), "not a pair"], DATA)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["pairs.jsonl"]
    assert snapshot_read(tmp_path, "preference_pairs", DATA) == ITEMS["preference_pairs"][:1]


def test_a_damaged_file_is_named_in_the_error(tmp_path):
    path = snapshot_write(tmp_path, "preference_pairs", ITEMS["preference_pairs"], DATA)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataSnapshotError, match=f"data snapshot {path} is damaged: it is cut short"):
        snapshot_read(tmp_path, "preference_pairs", DATA)


def test_a_later_attempt_reads_the_first_ones_data_without_querying_and_one_without_it_queries(tmp_path, caplog):
    from types import SimpleNamespace

    caplog.set_level(logging.INFO, logger="webapp.rewards.data_snapshots")
    run = SimpleNamespace(pk=7, checkpoint_dir=tmp_path / "run-7", config={"data": DATA})
    pairs = ITEMS["preference_pairs"]
    assert run_training_data(run=run, attempt=1, kind="preference_pairs", query=lambda: pairs) == pairs
    assert "run 7 attempt 1: wrote the data it trains on (3 pairs)" in caplog.text

    def query():
        raise AssertionError("a later attempt must not query")

    assert run_training_data(run=run, attempt=3, kind="preference_pairs", query=query) == pairs
    assert "run 7 attempt 3: trains on the data snapshot" in caplog.text
    assert run_training_data(run=run, attempt=2, kind="sft_examples", query=list) == []
    assert "an earlier attempt ended before writing it" in caplog.text
    assert snapshot_read(run.checkpoint_dir, "sft_examples", DATA) == []


# --- runs ------------------------------------------------------------------------------------

TINY = {"source": "tiny", "tiny": {"alphabet": "abxy", "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                   "intermediate_size": 64, "seed": 0}}
TINY_RM = {"backbone": "tiny", "batch_size": 2, "epochs": 2, "eval_fraction": 0.25, "max_length": 32,
           "device": "cpu"}


@pytest.fixture
def project():
    user = make_user()
    project = make_project(owner=user)
    project.user = user
    return project


@pytest.fixture
def labels(project):
    """Six labels of three annotators on three tasks (a chat prompt among them); the second one
    rejected before the launch. Answers: ``[(label, annotator)]``."""
    annotators = [make_user() for _ in range(3)]
    for user in annotators:
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    tasks = [make_task(project, completions=["aa", "b", "ab"], prompt_messages=CHAT, required_labels=3),
             make_task(project, prompt="xy", completions=["a", "bb"], required_labels=3),
             make_task(project, prompt="yx", completions=["ab", "ba"], required_labels=3)]
    given = []
    for task, user, ranking in [(tasks[0], annotators[0], [[0], [2], [1]]), (tasks[1], annotators[0], [[0], [1]]),
                                (tasks[2], annotators[1], [[1], [0]]), (tasks[0], annotators[1], [[2], [0], [1]]),
                                (tasks[1], annotators[2], [[1], [0]]), (tasks[2], annotators[2], [[0], [1]])]:
        given.append((label_submit(task=task, annotator=user, ranking=ranking, submission_key=uuid.uuid4().hex), user))
    label_reject(label_id=given[1][0].id, project=project, by=project.user)
    return given


def change_labels(project, given):
    """What review and annotators do after the launch: one label rejected, one withdrawn, and the
    one rejected before the launch restored."""
    label_reject(label_id=given[0][0].id, project=project, by=project.user, reason="careless")
    label_undo(label_id=given[2][0].id, annotator=given[2][1])
    label_restore(label_id=given[1][0].id, project=project)


def release_at(monkeypatch, step):
    """The worker shuts down after ``step`` (as Ctrl-C or SIGTERM): the run goes back to the queue."""
    original = execution.RunRecorder.on_metrics

    def on_metrics(self, at, metrics):
        original(self, at, metrics)
        if at == step:
            runs_release(worker="w1@host", process="w1@host:1")

    monkeypatch.setattr(execution.RunRecorder, "on_metrics", on_metrics)
    return lambda: monkeypatch.setattr(execution.RunRecorder, "on_metrics", original)


def given_to(monkeypatch, module, name):
    """Wrap the engine's train function ``module.name``: answers the list of what each call was given."""
    import importlib

    engine = importlib.import_module(module)
    original, calls = getattr(engine, name), []

    def train(config, data, **kwargs):
        calls.append(list(data))
        return original(config, data, **kwargs)

    monkeypatch.setattr(engine, name, train)
    return calls


def policy_launch(project, kind, section):
    config = {"policy": TINY, "optim": {"lr": 1e-2}, "data": {"source": "labels"},
              kind: {"batch_size": 2, "epochs": 2, "device": "cpu", "checkpoint_every": 100, **section}}
    return run_launch(project=project, user=project.user, name=f"{kind} on labels", kind=kind, config=config,
                      policy=make_policy(project))


@pytest.mark.django_db(transaction=True)
def test_a_resumed_dpo_run_trains_on_the_pairs_of_its_first_attempt_though_labels_changed(
        project, labels, sent, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="webapp.rewards.data_snapshots")
    run = policy_launch(project, RunKind.DPO, {"beta": 0.1})
    calls = given_to(monkeypatch, "workers.engine.dpo", "train_dpo")
    back = release_at(monkeypatch, 2)
    assert run_execute(run_id=run.id, worker="w1@host") == "released"
    run.refresh_from_db()
    first, planned = calls[0], run.total_steps
    assert len(first) == 9 and (CHAT, "aa", "ab") in [(p.prompt, p.chosen, p.rejected) for p in first]
    assert latest_checkpoint(run.checkpoint_dir)[0] == 2
    assert snapshot_read(run.checkpoint_dir, "preference_pairs", run.config["data"]) == first

    change_labels(project, labels)
    now = dpo_pairs(project=project, data=run.config["data"])
    assert len(now) == 6 and now != first  # what the old code would have resumed on
    back()
    caplog.clear()
    assert run_execute(run_id=run.id, worker="w2@host") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert calls[1] == first and run.total_steps == planned == 10  # 9 pairs, 2 a step (5 steps), 2 epochs
    assert (run.attempts, run.current_step) == (2, 10)
    assert sorted(MetricPoint.objects.filter(run=run, key="loss").values_list("step", flat=True)) == list(range(1, 11))
    assert "attempt 2: trains on the data snapshot" in caplog.text and "(9 pairs)" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_resumed_sft_run_trains_on_the_examples_of_its_first_attempt_though_labels_changed(
        project, labels, sent, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="webapp.rewards.data_snapshots")
    run = policy_launch(project, RunKind.SFT, {"batch_size": 1, "epochs": 1})
    calls = given_to(monkeypatch, "workers.engine.sft", "train_sft")
    back = release_at(monkeypatch, 2)
    assert run_execute(run_id=run.id, worker="w1@host") == "released"
    run.refresh_from_db()
    first = calls[0]
    assert [(e.prompt, e.completion) for e in first] == [(CHAT, "aa"), ("yx", "ba"), (CHAT, "ab"), ("xy", "bb"),
                                                         ("yx", "ab")]
    assert run.total_steps == 5

    change_labels(project, labels)
    assert len(sft_examples(project=project, data=run.config["data"])) == 4
    back()
    caplog.clear()
    assert run_execute(run_id=run.id, worker="w2@host") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert calls[1] == first and (run.total_steps, run.current_step) == (5, 5)
    assert "attempt 2: trains on the data snapshot" in caplog.text and "(5 examples)" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_reward_model_run_started_again_trains_on_the_records_of_its_first_attempt(
        project, labels, sent, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="webapp.rewards.data_snapshots")
    run = run_launch(project=project, user=project.user, name="rm on labels", kind=RunKind.REWARD_MODEL,
                     config={**TINY_RM, "data": {"source": "labels", "strength_margins": [0.5, 1, 2]}})
    calls = given_to(monkeypatch, "workers.engine.rm_trainer", "train_reward_model")
    back = release_at(monkeypatch, 1)
    assert run_execute(run_id=run.id, worker="w1@host") == "released"
    run.refresh_from_db()
    first, planned = calls[0], run.total_steps
    assert len(first) == 5 and first[0] == PreferenceRecord(CHAT, ["aa", "b", "ab"], [[0], [2], [1]], None)
    assert snapshot_path(run.checkpoint_dir, "preference_records").is_file()

    change_labels(project, labels)
    assert len(preference_records(project=project, data=run.config["data"])) == 4
    back()
    caplog.clear()
    assert run_execute(run_id=run.id, worker="w2@host") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert calls[1] == first and run.total_steps == planned
    assert "attempt 2: trains on the data snapshot" in caplog.text and "(5 records)" in caplog.text
    # The snapshot lies beside the model's folder, not in what was registered as the model.
    model = RewardModel.objects.get(training_run=run)
    assert model.path == str(run.checkpoint_dir / "reward-model")
    assert not any(p.suffix == ".jsonl" or p.name == "data" for p in (run.checkpoint_dir / "reward-model").rglob("*"))

    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    run_folder_remove(run_id=run.id)  # as deleting the run does
    assert not run.checkpoint_dir.exists()


@pytest.mark.django_db(transaction=True)
def test_a_resumed_run_without_a_snapshot_reads_the_labels_again_says_so_and_keeps_them(
        project, labels, sent, monkeypatch, caplog):
    """A run launched before Steer kept snapshots: its checkpoints, no snapshot."""
    caplog.set_level(logging.INFO, logger="webapp.rewards.data_snapshots")
    run = policy_launch(project, RunKind.DPO, {"beta": 0.1})
    calls = given_to(monkeypatch, "workers.engine.dpo", "train_dpo")
    back = release_at(monkeypatch, 2)
    assert run_execute(run_id=run.id, worker="w1@host") == "released"
    snapshot_path(run.checkpoint_dir, "preference_pairs").unlink()
    label_restore(label_id=labels[1][0].id, project=project)  # one more pair: the old behaviour, logged
    back()
    caplog.clear()
    assert run_execute(run_id=run.id, worker="w2@host") == RunStatus.SUCCEEDED
    assert len(calls[0]) == 9 and len(calls[1]) == 10
    assert "attempt 2: no data snapshot" in caplog.text and "it has checkpoints" in caplog.text
    assert "read its data from the database again" in caplog.text
    assert snapshot_read(run.checkpoint_dir, "preference_pairs", run.config["data"]) == calls[1]


@pytest.mark.django_db(transaction=True)
def test_a_cut_short_snapshot_fails_the_attempt_naming_it_and_trains_on_nothing(project, labels, sent, monkeypatch):
    run = policy_launch(project, RunKind.DPO, {"beta": 0.1})
    calls = given_to(monkeypatch, "workers.engine.dpo", "train_dpo")
    back = release_at(monkeypatch, 2)
    assert run_execute(run_id=run.id, worker="w1@host") == "released"
    path = snapshot_path(run.checkpoint_dir, "preference_pairs")
    content = path.read_bytes()
    path.write_bytes(content[:len(content) // 2])  # a disk that lost the end of it
    back()
    assert run_execute(run_id=run.id, worker="w2@host") == RunStatus.FAILED
    run.refresh_from_db()
    assert len(calls) == 1
    assert f"the run's data snapshot {path} is damaged: it is cut short" in run.error
    assert "\n" not in run.error.strip()  # the one-line message, not a traceback


@pytest.mark.django_db
def test_the_first_attempt_writes_its_snapshot_after_clearing_what_an_earlier_database_left(
        project, labels, sent, monkeypatch):
    run = policy_launch(project, RunKind.DPO, {"beta": 0.1, "epochs": 1})
    snapshot_write(run.checkpoint_dir, "preference_pairs", [PreferencePair("old", "a", "b")], run.config["data"])
    calls = given_to(monkeypatch, "workers.engine.dpo", "train_dpo")
    assert run_execute(run_id=run.id, worker="w1@host") == RunStatus.SUCCEEDED
    assert len(calls[0]) == 9 and snapshot_read(run.checkpoint_dir, "preference_pairs") == calls[0]
