"""TRL's optional ``margin`` column on preference pairs: imported and stored only when a line
gives one, shown by the pairs API and the JSONL download (every line with one, 0.0 where a pair
has none, when any pair has one; it imports back as the same pairs, with those 0.0 margins),
passed to a reward-model run's records and ignored by DPO and SFT runs."""

import json

import datasets
import pytest

from tests.factories import make_project
from tests.webapp.api.conftest import api_user, token_client
from webapp.experiments.errors import RunError
from webapp.experiments.models import MetricPoint, Run, RunKind, RunStatus
from webapp.experiments.services import run_execute, run_launch
from webapp.rewards.errors import PairImportError
from webapp.rewards.models import PreferencePairSet, RewardModel
from webapp.rewards.parsing import parse_pairs
from webapp.rewards.selectors import dpo_pairs, preference_records, sft_examples
from webapp.rewards.services import pair_set_import
from workers.engine.dpo import PreferencePair
from workers.engine.sft import SFTExample

pytestmark = pytest.mark.django_db

LINES = [{"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 2},
         {"prompt": "3+3?", "chosen": "6", "rejected": "7", "margin": 0.5},
         {"prompt": "4+4?", "chosen": "8", "rejected": "9"},
         {"prompt": "5+5?", "chosen": "10", "rejected": "11", "margin": None},
         {"prompt": "6+6?", "chosen": "12", "rejected": "13", "margin": 0}]
STORED = [{"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 2.0},
          {"prompt": "3+3?", "chosen": "6", "rejected": "7", "margin": 0.5},
          {"prompt": "4+4?", "chosen": "8", "rejected": "9"},
          {"prompt": "5+5?", "chosen": "10", "rejected": "11"},
          {"prompt": "6+6?", "chosen": "12", "rejected": "13", "margin": 0.0}]


def jsonl(rows) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


@pytest.fixture
def owner_api():
    user = api_user()
    project = make_project(owner=user)
    return project, token_client(user)


def test_a_margin_is_stored_as_a_float_only_when_a_line_gives_one():
    """An int or a float margin is stored as a float; a line without one, or with null (how
    datasets' to_json writes a column's missing values), stores no margin, as before."""
    project = make_project()
    pair_set = pair_set_import(project=project, name="margins", content=jsonl(LINES))
    pair_set.refresh_from_db()
    assert pair_set.pairs == STORED and pair_set.pair_count == 5
    assert [type(p.get("margin")) for p in pair_set.pairs] == [float, float, type(None), type(None), float]


def test_a_margin_comes_with_conversational_and_implicit_prompt_pairs():
    user, assistant = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}
    lines = [{"prompt": [user], "chosen": [assistant], "rejected": "go away", "margin": 1.5},
             {"chosen": [user, assistant], "rejected": [user, {"role": "assistant", "content": "no"}], "margin": 3}]
    assert parse_pairs(jsonl(lines)) == [{"prompt": [user], "chosen": "hello", "rejected": "go away", "margin": 1.5},
                                         {"prompt": [user], "chosen": "hello", "rejected": "no", "margin": 3.0}]


@pytest.mark.parametrize("margin, error", [
    ("1.5", "margin must be a number ≥ 0 (or null for none), not a string"),
    (True, "margin must be a number ≥ 0 (or null for none), not true or false"),
    (False, "margin must be a number ≥ 0 (or null for none), not true or false"),
    ([1], "margin must be a number ≥ 0 (or null for none), not a list"),
    ({"value": 1}, "margin must be a number ≥ 0 (or null for none), not an object"),
    (-1, "margin must be ≥ 0, got -1"),
    (-0.25, "margin must be ≥ 0, got -0.25"),
    (10 ** 400, "margin is too large a number"),
    (20.5, "margin must be at most 20 (a gap in logits: σ(20) is already 1 − 2e-9), got 20.5"),
    (1e6, "margin must be at most 20 (a gap in logits: σ(20) is already 1 − 2e-9), got 1e+06"),
])
def test_a_bad_margin_is_refused_naming_its_line_and_nothing_is_stored(margin, error):
    project = make_project()
    content = jsonl([LINES[0], {"prompt": "q", "chosen": "a", "rejected": "b", "margin": margin}, LINES[2]])
    with pytest.raises(PairImportError) as info:
        pair_set_import(project=project, name="bad", content=content)
    assert info.value.errors == [(2, error)]
    assert not PreferencePairSet.objects.exists()


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_margin_json_cannot_store_is_refused_naming_its_line(number):
    content = jsonl([LINES[0]]) + f'{{"prompt": "q", "chosen": "a", "rejected": "b", "margin": {number}}}\n'
    with pytest.raises(PairImportError) as info:
        parse_pairs(content)
    assert [n for n, _ in info.value.errors] == [2] and number in info.value.errors[0][1]


def test_the_api_refuses_a_margin_above_the_bound_naming_its_line(owner_api):
    project, api = owner_api
    content = jsonl([LINES[0], {"prompt": "q", "chosen": "a", "rejected": "b", "margin": 1e6}])
    response = api.post(f"/api/v1/projects/{project.id}/pair-sets/", {"name": "huge", "content": content},
                        format="json")
    assert response.status_code == 400
    assert "line 2" in json.dumps(response.json()) and "at most 20" in json.dumps(response.json(), ensure_ascii=False)
    assert "1e+06" in json.dumps(response.json())
    assert not PreferencePairSet.objects.exists()
    content = jsonl([LINES[0], {"prompt": "q", "chosen": "a", "rejected": "b", "margin": 20}])  # the bound itself
    response = api.post(f"/api/v1/projects/{project.id}/pair-sets/", {"name": "huge", "content": content},
                        format="json")
    assert response.status_code == 201 and PreferencePairSet.objects.get().pairs[1]["margin"] == 20.0


def test_a_ranked_line_as_labels_jsonl_takes_no_margin():
    line = {"prompt": "q", "completions": ["a", "b"], "ranking": [[0], [1]], "margin": 1}
    with pytest.raises(PairImportError) as info:
        parse_pairs(jsonl([line]))
    message = "unknown field 'margin'; a ranked line (as labels.jsonl) holds prompt, completions and ranking"
    assert info.value.errors == [(1, message)]


# A set with some margins downloads every pair with one: 0.0 for those without, what TRL gives a
# pair without a margin and a reward-model run with its default config.margin (TRL cannot collate null).
DOWNLOADED = [{**pair, "margin": pair.get("margin", 0.0)} for pair in STORED]


def test_the_download_gives_every_pair_a_margin_when_some_have_one_and_imports_back(owner_api, tmp_path):
    project, api = owner_api
    pair_set = pair_set_import(project=project, name="margins", content=jsonl(LINES))
    response = api.get(f"/api/v1/pair-sets/{pair_set.id}/pairs.jsonl")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert [json.loads(line) for line in body.splitlines()] == DOWNLOADED
    again = pair_set_import(project=project, name="again", content=body)
    assert again.pairs == DOWNLOADED  # the same pairs, those without a margin now with 0.0
    # datasets reads the column as floats, no null, and TRL's RewardTrainer collates it into a tensor
    path = tmp_path / "pairs.jsonl"
    path.write_text(body)
    loaded = datasets.load_dataset("json", data_files=str(path), split="train")
    assert loaded.column_names == ["prompt", "chosen", "rejected", "margin"]
    assert loaded["margin"] == [2.0, 0.5, 0.0, 0.0, 0.0]
    from trl.trainer.reward_trainer import DataCollatorForPreference

    examples = [{"chosen_ids": [1, 2], "rejected_ids": [3], "margin": row["margin"]} for row in loaded]
    assert DataCollatorForPreference(pad_token_id=0)(examples)["margin"].tolist() == [2.0, 0.5, 0.0, 0.0, 0.0]


def test_a_set_without_margins_downloads_without_a_margin_column(owner_api):
    project, api = owner_api
    pair_set = pair_set_import(project=project, name="plain", content=jsonl(
        [{k: v for k, v in line.items() if k != "margin"} for line in LINES]))
    assert not pair_set.has_margin
    body = b"".join(api.get(f"/api/v1/pair-sets/{pair_set.id}/pairs.jsonl").streaming_content).decode()
    assert all(set(json.loads(line)) == {"prompt", "chosen", "rejected"} for line in body.splitlines())


def test_a_conversational_download_keeps_the_margin_and_imports_back(owner_api):
    project, api = owner_api
    chat = {"prompt": [{"role": "user", "content": "hi"}], "chosen": "hello", "rejected": "go away", "margin": 4}
    pair_set = pair_set_import(project=project, name="chat", content=jsonl([LINES[0], chat, LINES[2]]))
    body = b"".join(api.get(f"/api/v1/pair-sets/{pair_set.id}/pairs.jsonl").streaming_content).decode()
    rows = [json.loads(line) for line in body.splitlines()]
    assert rows[1] == {"prompt": [{"role": "user", "content": "hi"}],
                       "chosen": [{"role": "assistant", "content": "hello"}],
                       "rejected": [{"role": "assistant", "content": "go away"}], "margin": 4.0}
    assert rows[2]["margin"] == 0.0 and rows[0]["margin"] == 2.0
    # the same pairs, a string prompt now as one user message (as without margins), 0.0 for none
    again = pair_set_import(project=project, name="again", content=body)
    assert again.pairs[1] == pair_set.pairs[1]
    assert [p.get("margin") for p in pair_set.pairs] == [2.0, 4.0, None]
    assert [p.get("margin") for p in again.pairs] == [2.0, 4.0, 0.0]


def test_a_reward_model_runs_records_carry_each_pairs_margin():
    """None where a pair has none, so that the run's config.margin applies to it in the engine."""
    project = make_project()
    pair_set = pair_set_import(project=project, name="margins", content=jsonl(LINES))
    records = preference_records(project=project, data={"source": "pairs", "pair_set": pair_set.id})
    assert [r.margin for r in records] == [2.0, 0.5, None, None, 0.0]
    assert (records[0].prompt, records[0].completions, records[0].ranking) == ("2+2?", ["4", "5"], [[0], [1]])


def test_dpo_and_sft_runs_read_the_pairs_of_a_set_with_margins_as_without():
    """TRL's DPOTrainer and SFTTrainer have no margin: the pairs they are given are the same."""
    project = make_project()
    with_margins = pair_set_import(project=project, name="margins", content=jsonl(LINES))
    without = pair_set_import(project=project, name="plain", content=jsonl(
        [{k: v for k, v in line.items() if k != "margin"} for line in LINES]))
    pairs = dpo_pairs(project=project, data={"source": "pairs", "pair_set": with_margins.id})
    assert pairs == dpo_pairs(project=project, data={"source": "pairs", "pair_set": without.id})
    assert pairs[0] == PreferencePair("2+2?", "4", "5")
    examples = sft_examples(project=project, data={"source": "pairs", "pair_set": with_margins.id})
    assert examples[0] == SFTExample("2+2?", "4") and len(examples) == 5


def _rm_run(project, name: str, lines: list[dict]):
    pair_set = pair_set_import(project=project, name=name, content=jsonl(lines))
    config = {"backbone": "tiny", "batch_size": 12, "epochs": 1, "eval_fraction": 0.0, "max_length": 32,
              "device": "cpu", "data": {"source": "pairs", "pair_set": pair_set.id}}
    run = run_launch(project=project, user=None, name=name, kind=RunKind.REWARD_MODEL, config=config)
    assert run_execute(run_id=run.id, worker="w@host") == RunStatus.SUCCEEDED
    assert RewardModel.objects.get(training_run=run).is_ready
    return MetricPoint.objects.get(run=run, key="loss", step=1).value


def test_a_reward_model_run_trains_with_the_pairs_margins(sent):
    """The same pairs, the same seed: with margins the first step's Bradley-Terry loss,
    -log σ(r_chosen - r_rejected - margin), is higher than without (config.margin 0)."""
    project = make_project()
    plain = [{"prompt": f"What is {i} + {i}?", "chosen": f"It is {2 * i}.", "rejected": "I do not know."}
             for i in range(12)]
    with_margins = [{**line, "margin": 2} if i % 2 else line for i, line in enumerate(plain)]
    assert _rm_run(project, "rm-margins", with_margins) > _rm_run(project, "rm-plain", plain)


def test_a_set_stored_with_a_margin_above_the_bound_is_refused_at_launch_naming_the_pair(sent):
    """A set imported before imports bounded margins keeps its huge margin; a reward-model run on
    it was queued and then failed on the worker (the trainer refuses it). Now the launch refuses
    it, naming the set, the pair and the bound, and nothing is queued."""
    project = make_project()
    pair_set = pair_set_import(project=project, name="old", content=jsonl(LINES))
    stored = [*pair_set.pairs[:3], {**pair_set.pairs[3], "margin": 1e6}, pair_set.pairs[4]]
    PreferencePairSet.objects.filter(pk=pair_set.pk).update(pairs=stored)  # as stored before the bound
    config = {"backbone": "tiny", "eval_fraction": 0.0, "device": "cpu",
              "data": {"source": "pairs", "pair_set": pair_set.id}}
    with pytest.raises(RunError) as caught:
        run_launch(project=project, user=None, name="rm", kind=RunKind.REWARD_MODEL, config=config)
    assert caught.value.field == "config.data"
    assert caught.value.message.startswith("pair 4 of the set 'old' has a margin of 1e+06, stored before imports "
                                           "were bounded; a margin must be at most 20")
    assert "Import the set again" in caught.value.message
    assert not Run.objects.exists() and not sent
    # The bound itself trains, as at import
    PreferencePairSet.objects.filter(pk=pair_set.pk).update(pairs=[*stored[:3], {**stored[3], "margin": 20.0},
                                                                   stored[4]])
    run = run_launch(project=project, user=None, name="rm", kind=RunKind.REWARD_MODEL, config=config)
    assert Run.objects.get().pk == run.pk
