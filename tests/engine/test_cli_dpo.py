"""``python -m workers.engine train-dpo``: DPO from a JSONL of preferences on a machine without
Steer's web app (a GPU box), as ``train-rm`` trains a reward model."""

import json

import pytest

from workers.engine.__main__ import main
from workers.engine.checkpoint import latest_checkpoint
from workers.engine.dpo import PreferencePair, pairs_from_preferences
from workers.engine.errors import DataError
from workers.engine.rm_trainer import PreferenceRecord

TINY = {"source": "tiny", "tiny": {"alphabet": "abxy", "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                   "intermediate_size": 64, "seed": 0}}


def write(tmp_path, config: dict, lines: list[dict], folder: str = "."):
    tmp_path = tmp_path / folder
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    path = tmp_path / "dpo.json"
    path.write_text(json.dumps({**config, "data": {"path": "prefs.jsonl"}}))  # relative: next to the config
    return path


def test_a_ranking_gives_each_completion_over_every_one_ranked_below_and_a_tie_none():
    records = [PreferenceRecord("p", ["a", "b", "c", "d"], [[2], [0, 1], [3]]),
               PreferenceRecord("q", ["x", "y"], [[0, 1]])]
    assert pairs_from_preferences(records) == [
        PreferencePair("p", "c", "a"), PreferencePair("p", "c", "b"), PreferencePair("p", "c", "d"),
        PreferencePair("p", "a", "d"), PreferencePair("p", "b", "d")]


def test_train_dpo_trains_saves_and_resumes_from_its_folder(tmp_path, capsys):
    lines = [{"prompt": p, "chosen": "a" * n, "rejected": "b" * n} for n, p in enumerate(["x", "y", "xy", "yx"], 1)]
    lines.append({"prompt": [{"role": "user", "content": "xx"}], "completions": ["aa", "ab", "bb"],
                  "ranking": [[0], [1], [2]]})
    config = {"policy": TINY, "optim": {"lr": 1e-2},
              "dpo": {"batch_size": 7, "epochs": 2, "device": "cpu", "checkpoint_every": 1}}
    path = write(tmp_path, config, lines)
    out = tmp_path / "out"
    assert main(["train-dpo", "--config", str(path), "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "after 2 steps (0 tie(s) skipped)" in printed and str(out / "checkpoints" / "step-2") in printed
    assert latest_checkpoint(out)[0] == 2
    # three epochs now: the run goes on from step 2 rather than starting over
    path.write_text(json.dumps({**config, "dpo": {**config["dpo"], "epochs": 3}, "data": {"path": "prefs.jsonl"}}))
    assert main(["train-dpo", "--config", str(path), "--output-dir", str(out)]) == 0
    assert "after 3 steps" in capsys.readouterr().out and latest_checkpoint(out)[0] == 3


def test_a_bad_config_or_data_file_is_one_line_naming_it_and_exit_2(tmp_path, capsys):
    good = {"policy": TINY, "dpo": {"device": "cpu"}}
    cases = [
        (write(tmp_path, {**good, "dpo": {"beta": -1}}, [{"prompt": "x", "chosen": "a", "rejected": "b"}], "1"),
         "beta"),
        (write(tmp_path, good, [{"prompt": "x", "chosen": "a"}], "2"), "prefs.jsonl:1: needs either chosen + rejected"),
        (write(tmp_path, good, [{"prompt": "x", "completions": ["a", "b"], "ranking": [[0, 1]]}], "3"),
         "no preference pairs to train on"),
    ]
    missing = tmp_path / "none.json"
    missing.write_text(json.dumps(good))
    cases.append((missing, 'the config needs "data": {"path": "preferences.jsonl"}'))
    for path, words in cases:
        assert main(["train-dpo", "--config", str(path), "--output-dir", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and err.count("\n") == 1, err


def test_trls_conversational_preferences_read_as_the_assistants_text(tmp_path):
    """TRL's conversational format (and Steer's export of a project with chat prompts) gives
    chosen and rejected as assistant messages; train-rm and train-dpo refused them as "completions
    must be a list of strings"."""
    from workers.engine.rm_trainer import load_preferences

    chat = [{"role": "user", "content": "x"}]
    line = {"prompt": chat, "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}], "task_id": 1, "annotator": "ann"}
    tool_turn = {"prompt": chat, "completions": [[{"role": "tool", "content": "t"}], "c"], "ranking": [[0], [1]]}
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps(line) + "\n")
    [record] = load_preferences(path)
    assert (record.prompt, record.completions, record.ranking) == (chat, ["a", "b"], [[0], [1]])
    path.write_text(json.dumps(tool_turn) + "\n")
    with pytest.raises(DataError, match="prefs.jsonl:1: completions must be a list of strings"):
        load_preferences(path)  # not the assistant's words alone: still refused, naming the line


def test_a_pair_marked_tie_reads_as_a_tie_and_gives_dpo_nothing(tmp_path):
    """Steer's preferences.jsonl?include_ties=true writes a tied pair with "tie": true; it was read
    as chosen over rejected."""
    from workers.engine.rm_trainer import load_preferences

    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "tie": True, "both_bad": False}) + "\n"
                    + json.dumps({"prompt": "p", "chosen": "c", "rejected": "d", "tie": False}) + "\n")
    tied, decisive = load_preferences(path)
    assert tied.ranking == [[0, 1]] and decisive.ranking == [[0], [1]]
    assert pairs_from_preferences([tied, decisive]) == [PreferencePair("p", "c", "d")]
