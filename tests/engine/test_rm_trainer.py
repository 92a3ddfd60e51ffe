"""Reward-model training: config, data checks, learning on synthetic preferences, CLI."""

import json
import math
import random

import pytest
import torch

from workers.engine.errors import ConfigError, DataError
from workers.engine.preference_losses import bradley_terry_loss
from workers.engine.reward_model import load_reward_model
from workers.engine.rm_trainer import (
    MASTER_KEY_PROBES,
    PreferenceRecord,
    RewardModelTrainConfig,
    cli_main,
    load_preferences,
    planned_steps,
    ranking_pairs,
    split_records,
    train_reward_model,
)

torch.set_num_threads(1)

WORDS = "the a cat dog bird runs jumps sits quickly slowly over under near house tree river red blue green".split()


def keyword_records(n: int, seed: int = 0, keyword: str = "excellent") -> list[PreferenceRecord]:
    """Pairs in which the completion containing ``keyword`` is preferred, order shuffled."""
    rng = random.Random(seed)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7)))

    records = []
    for _ in range(n):
        good, bad = f"{sentence()} {keyword} {sentence()}", f"{sentence()} {sentence()}"
        if rng.random() < 0.5:
            records.append(PreferenceRecord("describe the scene", [good, bad], [[0], [1]]))
        else:
            records.append(PreferenceRecord("describe the scene", [bad, good], [[1], [0]]))
    return records


def tiny_config(**overrides) -> RewardModelTrainConfig:
    base = dict(backbone="tiny", lr=3e-3, epochs=3, batch_size=8, max_length=32, eval_fraction=0.25, device="cpu")
    return RewardModelTrainConfig(**{**base, **overrides})


# --- rankings and splits --------------------------------------------------------------------


def test_ranking_pairs_cover_every_implied_pair():
    pairs = ranking_pairs([[2], [0, 1], [3]])
    assert sorted(pairs) == sorted([(0, 1, True), (2, 0, False), (2, 1, False), (2, 3, False),
                                    (0, 3, False), (1, 3, False)])  # fmt: skip


def test_split_is_deterministic_disjoint_and_sized():
    train, held_out = split_records(40, 0.25, seed=3)
    assert (train, held_out) == split_records(40, 0.25, seed=3)
    assert len(held_out) == 10 and sorted(train + held_out) == list(range(40))
    assert split_records(40, 0.25, seed=4)[1] != held_out


# --- learning -------------------------------------------------------------------------------


def test_tiny_reward_model_learns_keyword_preference(tmp_path):
    history = []
    result = train_reward_model(tiny_config(ensemble_size=2), keyword_records(120), output_dir=tmp_path / "rm",
                                on_metrics=lambda step, m: history.append((step, m)))  # fmt: skip
    assert result.metrics["eval/accuracy"] >= 0.9
    assert result.steps == planned_steps(120, tiny_config()) == len(history)
    assert [s for s, _ in history] == list(range(1, result.steps + 1))
    assert {"loss", "train/accuracy", "learning_rate", "ensemble/disagreement"} <= set(history[0][1])
    assert {"eval/accuracy", "eval/loss"} <= set(history[-1][1])
    assert history[-1][1]["loss"] < history[0][1]["loss"]


def test_master_key_probes_do_not_fool_a_model_that_learnt_content(tmp_path):
    result = train_reward_model(tiny_config(), keyword_records(120), output_dir=tmp_path / "rm")
    assert result.metrics["eval/probes/beat_preferred"] <= 0.1
    assert result.metrics["eval/probes/worst_beat_preferred"] <= 0.2


def test_master_key_probes_fool_a_model_that_learnt_a_reasoning_opener(tmp_path):
    """Preferred answers all open with 'Thought process:': the probe of that opener alone, with
    nothing after it, then scores at least as high as every preferred answer."""
    rng = random.Random(1)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7)))

    records = []
    for i in range(120):
        good, bad = f"Thought process: {sentence()}", f"{sentence()} {sentence()}"
        records.append(PreferenceRecord("describe the scene", [good, bad] if i % 2 else [bad, good],
                                        [[0], [1]] if i % 2 else [[1], [0]]))
    result = train_reward_model(tiny_config(), records, output_dir=tmp_path / "rm")
    assert result.metrics["eval/accuracy"] == 1.0  # it ranks the data right, and is fooled all the same
    assert result.metrics["eval/probes/worst_beat_preferred"] == 1.0
    assert result.metrics["eval/probes/beat_preferred"] > 0.3


def test_trained_model_reloads_with_the_scores_it_was_evaluated_with(tmp_path):
    config = tiny_config(epochs=1)
    records = keyword_records(40)
    result = train_reward_model(config, records, output_dir=tmp_path / "rm")
    scorer = load_reward_model(result.output_dir, device="cpu")
    held_out = [records[i] for i in split_records(len(records), config.eval_fraction, config.seed)[1]]
    prompts = [r.prompt for r in held_out for _ in r.completions]
    scores = scorer.score(prompts, [c for r in held_out for c in r.completions]).mean(0).view(-1, 2)  # (B, 2)
    best = torch.tensor([r.ranking[0][0] for r in held_out])
    chosen, rejected = scores.gather(1, best[:, None])[:, 0], scores.gather(1, 1 - best[:, None])[:, 0]
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(result.metrics["eval/loss"], rel=1e-5)
    assert scorer.manifest["training_config"] == config.to_dict()
    probes = scorer.score([r.prompt for r in held_out for _ in MASTER_KEY_PROBES],
                          [p for _ in held_out for p in MASTER_KEY_PROBES]).mean(0).view(len(held_out), -1)
    beats = (probes >= chosen[:, None]).float()
    assert beats.mean().item() == pytest.approx(result.metrics["eval/probes/beat_preferred"])
    assert beats.mean(0).max().item() == pytest.approx(result.metrics["eval/probes/worst_beat_preferred"])


def test_plackett_luce_learns_from_three_way_rankings_with_ties(tmp_path):
    rng = random.Random(1)
    records = []
    for pair in keyword_records(90, seed=1):
        good = pair.completions[pair.ranking[0][0]]
        bad = pair.completions[pair.ranking[1][0]]
        other = " ".join(rng.choice(WORDS) for _ in range(5))
        records.append(PreferenceRecord(pair.prompt, [bad, other, good], [[2], [0, 1]]))
    result = train_reward_model(tiny_config(loss="plackett_luce"), records, output_dir=tmp_path / "rm")
    assert result.metrics["eval/accuracy"] >= 0.9


def test_rao_kupper_ties_train_alongside_decisive_pairs(tmp_path):
    records = keyword_records(40) + [PreferenceRecord("describe the scene", ["a cat", "a dog"], [[0, 1]])] * 10
    config = tiny_config(epochs=1, tie_handling="rao_kupper", center_coef=0.01, margin=0.5)
    result = train_reward_model(config, records, output_dir=tmp_path / "rm")
    assert math.isfinite(result.metrics["loss"]) and math.isfinite(result.metrics["eval/loss"])


def test_bootstrapped_ensemble_members_disagree(tmp_path):
    result = train_reward_model(tiny_config(ensemble_size=3, epochs=1), keyword_records(40), output_dir=tmp_path)
    assert result.metrics["eval/ensemble/disagreement"] > 0
    assert load_reward_model(tmp_path, device="cpu").score(["p"], ["a cat"]).shape == (3, 1)


def test_should_stop_ends_early_and_still_saves(tmp_path):
    calls = []
    result = train_reward_model(tiny_config(), keyword_records(40), output_dir=tmp_path / "rm",
                                should_stop=lambda: len(calls) >= 2, on_metrics=lambda s, m: calls.append(s))  # fmt: skip
    assert result.stopped and result.steps == 2
    assert (result.output_dir / "reward_model.json").is_file()


# --- bad data -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "no preference records"),
        ([PreferenceRecord("p", ["a", "b"], [[0, 1]])] * 3, "every record is a tie"),
        ([PreferenceRecord("p", ["a"], [[0]])], "at least 2 completions"),
        ([PreferenceRecord("p", ["a", "b"], [[0], [0]])], "exactly once"),
        ([PreferenceRecord("p", ["a", "b"], [[0]])], "exactly once"),
        ([PreferenceRecord("p", ["a", "b"], [[0], [2]])], "exactly once"),
        ([PreferenceRecord(3, ["a", "b"], [[0], [1]])], "prompt"),
        ([PreferenceRecord("p", ["a", "b"], [[0], [1]], margin=-1.0)], "margin"),
    ],
)
def test_unusable_data_is_refused_before_training(tmp_path, records, message):
    with pytest.raises(DataError, match=message):
        train_reward_model(tiny_config(), records, output_dir=tmp_path / "rm")
    assert not (tmp_path / "rm").exists()


def test_load_preferences_reads_trl_pairs_and_rankings(tmp_path):
    path = tmp_path / "prefs.jsonl"
    rows = [
        {"prompt": "p", "chosen": "good", "rejected": "bad"},
        {"prompt": [{"role": "user", "content": "q"}], "completions": ["x", "y", "z"], "ranking": [[1], [0, 2]]},
        {"chosen": "c", "rejected": "r", "margin": 0.5},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    records = load_preferences(path)
    assert records[0] == PreferenceRecord("p", ["good", "bad"], [[0], [1]])
    assert records[1].ranking == [[1], [0, 2]] and records[1].prompt[0]["content"] == "q"
    assert records[2] == PreferenceRecord("", ["c", "r"], [[0], [1]], 0.5)


def test_load_preferences_names_the_bad_line(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "a"}\n')
    with pytest.raises(DataError, match=r"prefs.jsonl:2: needs either"):
        load_preferences(path)


# --- config ---------------------------------------------------------------------------------


def test_config_round_trips_through_a_dict():
    config = RewardModelTrainConfig(backbone="tiny", ensemble_size=4, loss="plackett_luce", center_coef=0.01)
    assert RewardModelTrainConfig.from_dict(config.to_dict()) == config
    assert RewardModelTrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_config_refuses_unknown_keys():
    with pytest.raises(ConfigError) as caught:
        RewardModelTrainConfig.from_dict({"learning_rate": 1e-5})
    assert caught.value.field == "learning_rate"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("backbone", "gpt9"), ("loss", "hinge"), ("tie_handling", "coin"), ("ensemble_size", 0),
        ("epochs", 0), ("batch_size", -1), ("lr", 0.0), ("margin", -0.5), ("eval_fraction", 1.0),
        ("tie_threshold", 0.0), ("ensemble_size", True), ("lr", "fast"), ("lr", float("nan")),
        ("bootstrap", 1), ("max_length", 4), ("seed", -1), ("seed", 2**64),
        ("ensemble_size", 10**4), ("epochs", 10**10), ("batch_size", 10**6), ("max_length", 10**7),
    ],
)  # fmt: skip
def test_config_names_the_bad_field(field, value):
    with pytest.raises(ConfigError) as caught:
        RewardModelTrainConfig(**{"backbone": "tiny", field: value})
    assert caught.value.field == field


def test_causal_lm_config_needs_a_path():
    with pytest.raises(ConfigError) as caught:
        RewardModelTrainConfig(backbone="causal_lm")
    assert caught.value.field == "path"


# --- CLI ------------------------------------------------------------------------------------


def write_cli_inputs(folder, config: dict, records: list[PreferenceRecord]):
    lines = [json.dumps({"prompt": r.prompt, "completions": r.completions, "ranking": r.ranking}) for r in records]
    (folder / "prefs.jsonl").write_text("\n".join(lines))
    (folder / "cfg.json").write_text(json.dumps({**config, "data": {"path": "prefs.jsonl"}}))
    return folder / "cfg.json"


def test_cli_trains_and_saves(tmp_path, capsys):
    cfg = write_cli_inputs(tmp_path, tiny_config(epochs=1).to_dict(), keyword_records(24))
    assert cli_main(["train-rm", "--config", str(cfg), "--output-dir", str(tmp_path / "out")]) == 0
    assert "saved reward model" in capsys.readouterr().out
    assert load_reward_model(tmp_path / "out", device="cpu").ensemble_size == 1


@pytest.mark.parametrize(
    ("config", "records", "expected"),
    [
        ({"backbone": "tiny", "lr": -1}, keyword_records(4), "error: lr: must be > 0"),
        ({"backbone": "tiny", "colour": "red"}, keyword_records(4), "error: colour: unknown key"),
        ({"backbone": "tiny"}, [PreferenceRecord("p", ["a", "b"], [[0, 1]])], "error: every record is a tie"),
    ],
)
def test_cli_reports_bad_input_in_one_line_with_exit_code_2(tmp_path, capsys, config, records, expected):
    cfg = write_cli_inputs(tmp_path, config, records)
    assert cli_main(["--config", str(cfg), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(expected) and "\n" not in err


def test_cli_missing_data_file_is_exit_code_2(tmp_path, capsys):
    (tmp_path / "cfg.json").write_text(json.dumps({"backbone": "tiny", "data": {"path": "missing.jsonl"}}))
    assert cli_main(["--config", str(tmp_path / "cfg.json"), "--output-dir", str(tmp_path / "out")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_learns_and_reloads_identically(tmp_path):
    result = train_reward_model(tiny_config(ensemble_size=2, device="cuda"), keyword_records(120),
                                output_dir=tmp_path / "rm")  # fmt: skip
    assert result.metrics["eval/accuracy"] >= 0.9
    texts = ["a cat excellent runs", "a dog sits"]
    first = load_reward_model(tmp_path / "rm", device="cuda").score(["p", "p"], texts)
    again = load_reward_model(tmp_path / "rm", device="cuda").score(["p", "p"], texts)
    assert torch.equal(first, again)
    torch.testing.assert_close(load_reward_model(tmp_path / "rm", device="cpu").score(["p", "p"], texts), first,
                               atol=1e-4, rtol=1e-4)  # fmt: skip


def test_config_reads_json_integers_as_floats():
    config = RewardModelTrainConfig.from_dict({"backbone": "tiny", "lr": 1, "margin": 0})
    assert config.lr == 1.0 and isinstance(config.lr, float) and isinstance(config.to_dict()["margin"], float)


def test_jsonl_lines_end_at_a_newline_only(tmp_path):
    """U+2028, U+2029 and U+0085 are allowed raw inside JSON strings (json.dumps with
    ensure_ascii=False writes them so): they split neither a preference line nor a prompt line."""
    from workers.engine.data import read_prompts_jsonl

    text = "line one\u2028line two\u2029three\x85four"
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(json.dumps({"prompt": text, "chosen": "a", "rejected": "b"}, ensure_ascii=False) + "\r\n",
                     encoding="utf-8")
    assert [r.prompt for r in load_preferences(prefs)] == [text]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": p, "reference": "1"}, ensure_ascii=False)
                                 for p in (text, "q")), encoding="utf-8")
    assert [r.prompt for r in read_prompts_jsonl(prompts)] == [text, "q"]
