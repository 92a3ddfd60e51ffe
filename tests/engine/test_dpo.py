"""DPO: the loss against TRL 1.16's own DPOTrainer code, a tiny-model run that learns a toy
preference, resume, ties, and the config's errors."""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from workers.engine.dpo import (
    PreferencePair,
    dpo_loss,
    planned_dpo_steps,
    step_pairs,
    train_dpo,
    usable_pairs,
)
from workers.engine.dpo_config import DPOTrainConfig
from workers.engine.errors import ConfigError, DataError

# Hand-made summed log-probs of 4 pairs, and the completions' token counts (for IPO).
CHOSEN = torch.tensor([-3.0, -7.5, -1.25, -12.0])
REJECTED = torch.tensor([-4.0, -6.0, -9.0, -11.0])
REF_CHOSEN = torch.tensor([-3.5, -7.0, -2.0, -10.0])
REF_REJECTED = torch.tensor([-3.0, -6.5, -8.0, -13.0])
CHOSEN_LEN = torch.tensor([3, 5, 2, 7])
REJECTED_LEN = torch.tensor([4, 2, 6, 7])


def trl_loss(loss_type, *, beta, label_smoothing=0.0, chosen=CHOSEN, rejected=REJECTED, ref_chosen=REF_CHOSEN,
             ref_rejected=REF_REJECTED, chosen_len=CHOSEN_LEN, rejected_len=REJECTED_LEN):
    """TRL 1.16's DPOTrainer._compute_loss run on the given summed log-probs: a stand-in model
    returns per-token log-probs that sum to them (the first completion position holds the sum),
    and the reference log-probs come precomputed, as TRL's precompute_ref_log_probs passes them."""
    from trl.trainer.dpo_trainer import DPOTrainer

    b = len(chosen)
    width = int(max(chosen_len.max(), rejected_len.max())) + 1
    completion_mask = torch.zeros(2 * b, width, dtype=torch.long)
    for row, n in enumerate(torch.cat([chosen_len, rejected_len]).tolist()):
        completion_mask[row, 1:1 + n] = 1
    per_token = torch.zeros(2 * b, width - 1)
    per_token[:, 0] = torch.cat([chosen, rejected])
    outputs = SimpleNamespace(log_probs=per_token, entropy=torch.zeros(2 * b, width - 1),
                              mean_logits=torch.zeros(2 * b, width - 1),
                              is_top1=torch.zeros(2 * b, width - 1, dtype=torch.bool))
    model = lambda **kwargs: outputs
    accelerator = SimpleNamespace(device=torch.device("cpu"), gather=lambda t: t, gather_for_metrics=lambda t: t)
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=accelerator, aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=[loss_type], loss_weights=[1.0],
        beta=beta, label_smoothing=label_smoothing, use_weighting=False, _metrics={"train": defaultdict(list)},
        _total_train_tokens=0, _tp_size=1)
    inputs = {"input_ids": torch.ones(2 * b, width, dtype=torch.long), "attention_mask": torch.ones(2 * b, width),
              "completion_mask": completion_mask, "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    loss = DPOTrainer._compute_loss(trainer, model, inputs, return_outputs=False)
    return loss, {k: v[-1] for k, v in trainer._metrics["train"].items()}


def ours(loss_type, *, beta, label_smoothing=0.0, **tensors):
    chosen, rejected = tensors.get("chosen", CHOSEN), tensors.get("rejected", REJECTED)
    out = dpo_loss(chosen, rejected, tensors.get("ref_chosen", REF_CHOSEN), tensors.get("ref_rejected", REF_REJECTED),
                   beta=beta, loss_type=loss_type, label_smoothing=label_smoothing,
                   chosen_lengths=CHOSEN_LEN.float(), rejected_lengths=REJECTED_LEN.float())
    return out


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_sigmoid_loss_and_metrics_match_trl(beta):
    trl, metrics = trl_loss("sigmoid", beta=beta)
    out = ours("sigmoid", beta=beta)
    assert out.losses.mean().item() == pytest.approx(trl.item(), rel=1e-6)
    assert out.chosen_rewards.mean().item() == pytest.approx(metrics["rewards/chosen"], rel=1e-6)
    assert out.rejected_rewards.mean().item() == pytest.approx(metrics["rewards/rejected"], rel=1e-6)
    margins = out.chosen_rewards - out.rejected_rewards
    assert margins.mean().item() == pytest.approx(metrics["rewards/margins"], rel=1e-6)
    assert (margins > 0).float().mean().item() == pytest.approx(metrics["rewards/accuracies"])
    assert 0 < metrics["rewards/accuracies"] < 1  # the hand-made pairs are not all ordered one way


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_ipo_loss_matches_trl_with_its_length_normalisation(beta):
    trl, _ = trl_loss("ipo", beta=beta)
    assert ours("ipo", beta=beta).losses.mean().item() == pytest.approx(trl.item(), rel=1e-6)


@pytest.mark.parametrize("epsilon", [0.1, 0.3])
def test_cdpo_label_smoothing_matches_trl(epsilon):
    """TRL 1.16 reads label_smoothing in its 'aot' loss as cDPO's −(1−ε)·log σ(βΔ) − ε·log σ(−βΔ),
    after sorting the policy's and the reference's log-ratios across the batch; with both already
    in ascending order the sort changes nothing, and it is cDPO pair by pair."""
    chosen = torch.tensor([-9.0, -6.0, -4.0, -1.0])
    rejected = torch.tensor([-5.0, -5.0, -5.0, -5.0])  # policy log-ratios c − r: −4, −1, 1, 4 (ascending)
    ref_chosen = torch.tensor([-6.0, -6.0, -6.0, -6.0])
    ref_rejected = torch.tensor([-3.0, -5.0, -6.5, -9.0])  # reference log-ratios: −3, −1, 0.5, 3 (ascending)
    tensors = {"chosen": chosen, "rejected": rejected, "ref_chosen": ref_chosen, "ref_rejected": ref_rejected}
    trl, _ = trl_loss("aot", beta=0.5, label_smoothing=epsilon, **tensors)
    out = ours("sigmoid", beta=0.5, label_smoothing=epsilon, **tensors)
    assert out.losses.mean().item() == pytest.approx(trl.item(), rel=1e-6)
    plain, _ = trl_loss("sigmoid", beta=0.5, **tensors)
    assert abs(out.losses.mean().item() - plain.item()) > 1e-3  # smoothing changed the loss


def test_sigmoid_loss_is_log_two_when_the_policy_is_the_reference():
    out = dpo_loss(CHOSEN, REJECTED, CHOSEN, REJECTED, beta=0.1)
    assert torch.allclose(out.losses, torch.full((4,), math.log(2)))
    assert not out.chosen_rewards.any() and not out.rejected_rewards.any()


def tiny_dpo(**dpo) -> DPOTrainConfig:
    return DPOTrainConfig.from_dict({
        "policy": {"source": "tiny", "tiny": {"alphabet": "abxy", "hidden_size": 32, "num_layers": 1,
                                              "num_heads": 2, "intermediate_size": 64, "seed": 0}},
        "dpo": {"beta": 0.1, "batch_size": 2, "gradient_accumulation_steps": 2, "epochs": 5, "device": "cpu",
                "checkpoint_every": 100, **dpo},
        "optim": {"lr": 1e-2}})


# Toy preference: answers of a's are preferred to answers of b's, whatever the prompt.
TOY = [PreferencePair(p, "a" * (i % 3 + 1), "b" * (i % 3 + 1))
       for i, p in enumerate(["x", "y", "xy", "yx", "xx", "yy", "xxy", "yyx"])]


def test_tiny_run_learns_the_preference(tmp_path):
    history = []
    result = train_dpo(tiny_dpo(), TOY, output_dir=tmp_path, on_metrics=lambda step, m: history.append(m))
    assert result.steps_completed == result.total_steps == planned_dpo_steps(8, tiny_dpo()) == 10
    first, last = history[0], history[-1]
    assert first["rewards/accuracies"] == 0.0 and first["rewards/margins"] == 0.0  # policy == reference
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert last["rewards/accuracies"] == 1.0
    assert last["rewards/margins"] > 1.0
    assert last["loss"] < 0.5 * first["loss"]
    assert {"rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected", "grad_norm",
            "learning_rate", "epoch"} <= set(last)
    assert last["epoch"] == 5.0
    assert (result.final_checkpoint / "config.json").is_file()


def test_chat_prompts_go_through_the_chat_template(tmp_path):
    pairs = [PreferencePair([{"role": "user", "content": "xy"}], "a", "b"),
             PreferencePair([{"role": "system", "content": "y"}, {"role": "user", "content": "x"}], "aa", "bb")]
    result = train_dpo(tiny_dpo(epochs=1), pairs, output_dir=tmp_path)
    assert result.steps_completed == 1


def test_resume_repeats_the_uninterrupted_run(tmp_path):
    config = tiny_dpo(checkpoint_every=3)
    straight = []
    train_dpo(config, TOY, output_dir=tmp_path / "straight", on_metrics=lambda s, m: straight.append((s, m)))

    first = []
    stopped = train_dpo(config, TOY, output_dir=tmp_path / "resumed", on_metrics=lambda s, m: first.append((s, m)),
                        should_stop=lambda: len(first) >= 4)
    assert stopped.stopped and stopped.steps_completed == 4
    checkpoints = []
    rest = []
    resumed = train_dpo(config, TOY, output_dir=tmp_path / "resumed", on_metrics=lambda s, m: rest.append((s, m)),
                        on_checkpoint=lambda s, p: checkpoints.append(s))
    assert resumed.resumed_from == 4 and [s for s, _ in rest] == list(range(5, 11))
    assert checkpoints == [6, 9, 10]
    for (step, m), (step_straight, m_straight) in zip(first + rest, straight, strict=True):
        assert step == step_straight
        for key in ("loss", "rewards/margins", "logps/chosen", "grad_norm"):
            assert m[key] == pytest.approx(m_straight[key], rel=1e-5, abs=1e-6), (step, key)


def test_resume_reads_the_reference_log_probs_saved_at_the_start(tmp_path, monkeypatch):
    """A resumed run's policy has moved: its reference must be the initial policy's log-probs,
    which it reads back instead of computing them again."""
    config = tiny_dpo(checkpoint_every=2)
    steps = []
    train_dpo(config, TOY, output_dir=tmp_path, on_metrics=lambda s, m: steps.append(s),
              should_stop=lambda: len(steps) >= 2)
    from workers.engine import dpo

    def no_second_reference(*args, **kwargs):
        raise AssertionError("the reference log-probs were computed again")

    monkeypatch.setattr(dpo, "reference_logps", no_second_reference)
    result = train_dpo(config, TOY, output_dir=tmp_path)
    assert result.resumed_from == 2 and result.steps_completed == 10


def test_ties_are_skipped_and_counted(tmp_path):
    pairs = [*TOY[:2], PreferencePair("x", "ab", "ab")]
    kept, ties = usable_pairs(pairs)
    assert kept == TOY[:2] and ties == 1
    history = []
    result = train_dpo(tiny_dpo(epochs=1), pairs, output_dir=tmp_path, on_metrics=lambda s, m: history.append(m))
    assert result.skipped_ties == 1 and result.total_steps == 1
    assert history[0]["data/pairs"] == 2 and history[0]["data/skipped_ties"] == 1


def test_only_ties_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="1 tie"):
        train_dpo(tiny_dpo(), [PreferencePair("x", "a", "a")], output_dir=tmp_path)


def test_step_pairs_cover_every_pair_once_per_epoch():
    config = tiny_dpo(batch_size=3, gradient_accumulation_steps=2, epochs=2)
    assert planned_dpo_steps(8, config) == 4
    epoch = [i for step in (1, 2) for micro in step_pairs(step, 8, config) for i in micro]
    assert sorted(epoch) == list(range(8))
    assert [len(m) for m in step_pairs(1, 8, config)] == [3, 3] and [len(m) for m in step_pairs(2, 8, config)] == [2]


@pytest.mark.parametrize(("section", "value", "field"), [
    ({"beta": 0}, None, "dpo.beta"),
    ({"loss_type": "hinge"}, None, "dpo.loss_type"),
    ({"label_smoothing": 0.5}, None, "dpo.label_smoothing"),
    ({"loss_type": "ipo", "label_smoothing": 0.1}, None, "dpo.label_smoothing"),
    ({"batch_size": 0}, None, "dpo.batch_size"),
    ({"gradient_accumulation_steps": 0}, None, "dpo.gradient_accumulation_steps"),
    ({"epochs": 10**9}, None, "dpo.epochs"),
    ({"max_length": 1}, None, "dpo.max_length"),
    ({"device": "gpu"}, None, "dpo.device"),
    ({"betta": 0.1}, None, "dpo.betta"),
])
def test_bad_settings_name_their_field(section, value, field):
    with pytest.raises(ConfigError) as caught:
        DPOTrainConfig.from_dict({"dpo": section})
    assert caught.value.field == field


def test_config_round_trips():
    config = DPOTrainConfig.from_dict({"dpo": {"beta": 1, "loss_type": "ipo"}, "optim": {"lr": 5e-7}})
    assert DPOTrainConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["dpo"]["beta"] == 1.0 and DPOTrainConfig().dpo.loss_type == "sigmoid"


def test_config_validation_does_not_import_torch():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\nfrom workers.engine.dpo_config import DPOTrainConfig\n"
            "DPOTrainConfig.from_dict({'dpo': {'beta': 0.2}})\nassert 'torch' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=Path(__file__).resolve().parents[2],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("fast", [True, False])
def test_sequence_logps_are_each_completions_log_likelihood_after_its_prompt(fast):
    """The batched rows (prompts left-padded, completions right-padded, chosen and rejected of
    different lengths) give what the model says of each prompt + completion on its own."""
    from workers.engine.dpo import encode_pairs, sequence_logps
    from workers.engine.tiny import build_tiny_policy

    model, tokenizer = build_tiny_policy(alphabet="abxy", hidden_size=32, num_layers=1, num_heads=2,
                                         intermediate_size=64, seed=3)
    model.eval()
    pairs = [PreferencePair("x", "aaa", "b"), PreferencePair([{"role": "user", "content": "xyyx"}], "ab", "bbbb")]
    encoded = encode_pairs(tokenizer, pairs, max_length=64, use_chat_template=True)
    with torch.no_grad():
        logps, lengths = sequence_logps(model, encoded, tokenizer.pad_token_id, "cpu", fast=fast)
        expected = []
        for completion_of in (lambda e: e.chosen, lambda e: e.rejected):
            for e in encoded:
                ids = torch.tensor([e.prompt + completion_of(e)])
                logits = model(input_ids=ids).logits[0, len(e.prompt) - 1:-1]
                targets = ids[0, len(e.prompt):]
                expected.append(torch.log_softmax(logits.float(), -1).gather(1, targets[:, None]).sum())
    assert torch.allclose(logps, torch.stack(expected), atol=1e-4)
    assert lengths.tolist() == [4, 3, 2, 5]  # each completion and its EOS
    assert encoded[0].chosen[-1] == tokenizer.eos_token_id


def test_a_prompt_too_long_keeps_its_end_and_completions_are_cut_to_fit():
    from workers.engine.dpo import encode_pairs
    from workers.engine.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer("abxy")
    [long_prompt] = encode_pairs(tokenizer, [PreferencePair("xxxxxxxxxy", "aaaa", "b")], max_length=6,
                                 use_chat_template=False)
    assert len(long_prompt.prompt) == 5 and tokenizer.decode(long_prompt.prompt).endswith("y")
    assert len(long_prompt.chosen) == len(long_prompt.rejected) == 1
    [short] = encode_pairs(tokenizer, [PreferencePair("xy", "aaaa", "b")], max_length=5, use_chat_template=False)
    assert tokenizer.decode(short.chosen) == "aaa" and short.rejected == tokenizer("b")["input_ids"] + [2]
