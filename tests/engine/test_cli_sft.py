"""``python -m workers.engine train-sft``: supervised fine-tuning from a JSONL of TRL's
prompt-completion examples (or of preference pairs, their chosen answers) on a machine with the
engine alone, as ``train-dpo`` trains with DPO."""

import json

import pytest

from workers.engine.__main__ import main
from workers.engine.checkpoint import latest_checkpoint
from workers.engine.errors import DataError
from workers.engine.sft import SFTExample, load_sft_examples

TINY = {"source": "tiny", "tiny": {"alphabet": "abxy", "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                   "intermediate_size": 64, "seed": 0}}


def write(tmp_path, config: dict, lines: list, folder: str = "."):
    tmp_path = tmp_path / folder
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "sft.jsonl").write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                                                for line in lines))
    path = tmp_path / "sft.json"
    path.write_text(json.dumps({**config, "data": {"path": "sft.jsonl"}}))  # relative: next to the config
    return path


def test_prompt_completion_lines_chat_lines_and_pair_lines_are_read(tmp_path):
    chat = [{"role": "system", "content": "y"}, {"role": "user", "content": "x"}]
    lines = [{"prompt": "x", "completion": "a"},
             {"prompt": chat, "completion": [{"role": "assistant", "content": "ab"}]},
             {"prompt": "y", "chosen": "aa", "rejected": "bb"},
             {"prompt": chat, "chosen": [{"role": "assistant", "content": "b"}],
              "rejected": [{"role": "assistant", "content": "a"}]},
             {"prompt": "y", "chosen": "a", "rejected": "b", "tie": True}]
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + "\n")
    examples, ties = load_sft_examples(path)
    assert examples == [SFTExample("x", "a"), SFTExample(chat, "ab"), SFTExample("y", "aa"), SFTExample(chat, "b")]
    assert ties == 1


def test_train_sft_trains_saves_and_resumes_from_its_folder(tmp_path, capsys):
    lines = [{"prompt": p, "completion": "a" * len(p)} for p in ["x", "y", "xy", "yx"]]
    lines.append({"prompt": "xx", "chosen": "aa", "rejected": "bb"})
    config = {"policy": TINY, "optim": {"lr": 1e-2},
              "sft": {"batch_size": 5, "epochs": 2, "device": "cpu", "checkpoint_every": 1}}
    path = write(tmp_path, config, lines)
    out = tmp_path / "out"
    assert main(["train-sft", "--config", str(path), "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "after 2 steps on 5 examples" in printed and str(out / "checkpoints" / "step-2") in printed
    assert latest_checkpoint(out)[0] == 2
    # three epochs now: the run goes on from step 2 rather than starting over
    path.write_text(json.dumps({**config, "sft": {**config["sft"], "epochs": 3}, "data": {"path": "sft.jsonl"}}))
    assert main(["train-sft", "--config", str(path), "--output-dir", str(out)]) == 0
    assert "after 3 steps" in capsys.readouterr().out and latest_checkpoint(out)[0] == 3


def test_trl_conversational_lines_learn_their_last_assistant_turn(tmp_path):
    """TRL's {"messages": [...]} (the format of its chat SFT datasets) was refused as 'needs prompt + completion'."""
    talk = [{"role": "system", "content": "y"}, {"role": "user", "content": "x"},
            {"role": "assistant", "content": "a"}, {"role": "user", "content": "xx"}]
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps({"messages": [*talk, {"role": "assistant", "content": "ab"}]}) + "\n")
    assert load_sft_examples(path) == ([SFTExample(talk, "ab")], 0)


@pytest.mark.parametrize(("config", "lines", "words"), [
    ({"sft": {"epochs": 0}}, [{"prompt": "x", "completion": "a"}], "sft.epochs"),
    ({"sft": {"beta": 0.1}}, [{"prompt": "x", "completion": "a"}], "sft.beta"),
    ({}, [{"prompt": "x", "completion": "a"}, {"prompt": "x", "answer": "a"}],
     "sft.jsonl:2: needs prompt + completion, messages, or prompt + chosen + rejected"),
    ({}, [{"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]}],
     "sft.jsonl:1: the last of the messages must be the assistant's answer to learn (it is 'user')"),
    ({}, [{"messages": [{"role": "assistant", "content": "a"}]}], "sft.jsonl:1: messages must be a list of at least two"),
    ({}, [{"prompt": "x", "completion": "a"}, "{nope"], "sft.jsonl:2: not JSON"),
    ({}, ["[1, 2]"], "sft.jsonl:1: each line must be a JSON object"),
    ({}, [{"prompt": 3, "completion": "a"}], "sft.jsonl:1: prompt must be a string or a list of"),
    ({}, [{"prompt": [{"role": "user"}], "completion": "a"}], "sft.jsonl:1: prompt must be"),
    ({}, [{"prompt": "x", "completion": ""}], "sft.jsonl:1: the completion must be a non-empty string"),
    ({}, [{"prompt": "x", "completion": [{"role": "tool", "content": "t"}]}], "sft.jsonl:1: the completion must"),
    ({}, [{"prompt": "x", "chosen": "a", "rejected": "a", "tie": True}], "no examples to train on (1 tied pair"),
    ({}, [], "no examples to train on"),
])
def test_a_bad_config_or_data_line_is_one_line_naming_it_and_exit_2(tmp_path, capsys, config, lines, words):
    good = {"policy": TINY, "sft": {"device": "cpu"}}
    path = write(tmp_path, {**good, **config}, lines)
    assert main(["train-sft", "--config", str(path), "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()  # nothing was written


def test_no_data_path_and_a_missing_data_file_are_named(tmp_path, capsys):
    config = tmp_path / "sft.json"
    config.write_text(json.dumps({"policy": TINY}))
    assert main(["train-sft", "--config", str(config), "--output-dir", str(tmp_path / "o")]) == 2
    assert 'the config needs "data": {"path": "examples.jsonl"}' in capsys.readouterr().err
    config.write_text(json.dumps({"policy": TINY, "data": {"path": "gone.jsonl"}}))
    assert main(["train-sft", "--config", str(config), "--output-dir", str(tmp_path / "o")]) == 2
    assert "cannot read examples from" in capsys.readouterr().err
    with pytest.raises(DataError, match="gone.jsonl"):
        load_sft_examples(tmp_path / "gone.jsonl")


def test_help_says_what_a_line_holds(capsys):
    assert main(["train-sft", "--help"]) == 0
    text = capsys.readouterr().out
    assert '"completion"' in text and "chosen" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "train-sft" in capsys.readouterr().out
