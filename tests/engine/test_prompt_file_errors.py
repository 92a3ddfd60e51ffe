"""A bad line of a prompt file (``train --prompts``, ``eval``, ``--eval-prompts``) is named by its line
number as an editor counts it, and its field: the error said "prompt #1", counting prompts from 0
and skipping blank lines, so the bad line of this file (line 4) was hard to find."""

import json

import pytest

from workers.engine.__main__ import main
from workers.engine.data import read_prompts_jsonl
from workers.engine.errors import DataError


@pytest.mark.parametrize(
    "bad, said",
    [
        ({"prompt": "  "}, "p.jsonl:4: 'prompt' is empty"),
        (
            {"prompt": [{"role": "user"}]},
            "p.jsonl:4: 'prompt': chat messages need string 'role' and 'content'",
        ),
        (
            {"prompt": 7},
            "p.jsonl:4: 'prompt': a prompt is a string or a non-empty list of messages",
        ),
        (
            {"prompt": "q", "answer": "4"},
            "p.jsonl:4: expected keys prompt, reference, id; got ['answer', 'prompt']",
        ),
        ([1, 2], "p.jsonl:4: each line must be a JSON object"),
    ],
)
def test_a_bad_line_is_named_by_its_line_number_and_field(tmp_path, bad, said):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"prompt": "a"})
        + "\n\n"
        + json.dumps({"prompt": "b"})
        + "\n"
        + json.dumps(bad)
        + "\n"
    )
    with pytest.raises(DataError) as refused:
        read_prompts_jsonl(path)
    assert str(refused.value) == f"{tmp_path / said}"


def test_the_train_command_prints_the_line(tiny_cfg, tmp_path, capsys):
    (tmp_path / "cfg.json").write_text(json.dumps(tiny_cfg()))
    (tmp_path / "p.jsonl").write_text('{"prompt": "a"}\n\n{"prompt": ""}\n')
    code = main(
        [
            "train",
            "--config",
            str(tmp_path / "cfg.json"),
            "--prompts",
            str(tmp_path / "p.jsonl"),
            "--output-dir",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2
    assert (
        capsys.readouterr().err
        == f"error: {tmp_path / 'p.jsonl'}:3: 'prompt' is empty\n"
    )


def test_a_good_file_reads_as_before(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"prompt": "a", "reference": 4, "id": "x"}\n\n{"prompt": [{"role": "user", "content": "b"}]}\n'
    )
    records = read_prompts_jsonl(path)
    assert [(r.prompt, r.reference, r.id) for r in records] == [
        ("a", "4", "x"),
        ([{"role": "user", "content": "b"}], None, None),
    ]
