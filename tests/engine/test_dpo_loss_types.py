"""TRL 1.16's other DPO loss types (and its weighted combinations of them): each one's value and
gradient against TRL's own DPOTrainer code on the same random log-probs, the config's checks
and JSON round trip, and short runs of a tiny model."""

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from workers.engine.dpo import PreferencePair, dpo_loss, train_dpo
from workers.engine.dpo_config import DPO_LOSS_TYPES, DPOTrainConfig
from workers.engine.errors import ConfigError

NEW_TYPES = ["slic", "exo_pair", "nca_pair", "robust", "sppo_hard", "aot", "aot_unpaired", "apo_zero",
             "apo_down", "discopop", "sft", "sigmoid_norm"]
# Steer's names that TRL spells otherwise.
TRL_NAME = {"slic": "hinge"}
# The ε each loss is tested with: TRL refuses exo_pair without one; robust, aot, aot_unpaired read it.
SMOOTHING = {"exo_pair": 1e-3, "robust": 0.2, "aot": 0.1, "aot_unpaired": 0.15}


def random_batch(seed: int, b: int = 6, width: int = 9):
    """Per-token log-probs of B chosen then B rejected completions (2B, width − 1) with their
    completion masks (2B, width; position 0 is a prompt token, as in TRL's shifted mask), and
    summed reference log-probs (B,) each."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width, (2 * b,), generator=g)
    completion_mask = torch.zeros(2 * b, width, dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        completion_mask[row, 1:1 + n] = 1
    per_token = -3 * torch.rand(2 * b, width - 1, generator=g) * completion_mask[:, 1:]
    ref = per_token.sum(dim=1) + torch.randn(2 * b, generator=g) * 2
    return per_token, completion_mask, ref[:b], ref[b:]


def trl_loss(per_token, completion_mask, ref_chosen, ref_rejected, loss_types, *, weights=None, beta,
             label_smoothing=0.0, discopop_tau=0.05):
    """TRL 1.16's DPOTrainer._compute_loss on per-token log-probs: a stand-in model returns them,
    and the reference log-probs come precomputed (precompute_ref_log_probs), as
    tests/engine/test_dpo.py calls it. As TRL's fused LM head does for labels of -100, the model
    gives 0 (and no gradient) outside the completions."""
    from trl.trainer.dpo_trainer import DPOTrainer

    loss_types = [TRL_NAME.get(name, name) for name in loss_types]
    per_token = per_token * completion_mask[:, 1:]
    rows, t = per_token.shape
    outputs = SimpleNamespace(log_probs=per_token, entropy=torch.zeros(rows, t), mean_logits=torch.zeros(rows, t),
                              is_top1=torch.zeros(rows, t, dtype=torch.bool))
    accelerator = SimpleNamespace(device=torch.device("cpu"), gather=lambda x: x, gather_for_metrics=lambda x: x)
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=accelerator, aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=list(loss_types),
        loss_weights=list(weights or [1.0] * len(loss_types)), beta=beta, label_smoothing=label_smoothing,
        use_weighting=False, args=SimpleNamespace(discopop_tau=discopop_tau),
        _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1)
    inputs = {"input_ids": torch.ones(rows, t + 1, dtype=torch.long), "attention_mask": torch.ones(rows, t + 1),
              "completion_mask": completion_mask, "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    loss = DPOTrainer._compute_loss(trainer, lambda **kwargs: outputs, inputs, return_outputs=False)
    return loss, {k: v[-1] for k, v in trainer._metrics["train"].items()}


def ours(per_token, completion_mask, ref_chosen, ref_rejected, loss_type, **settings):
    """Steer's dpo_loss on the same tokens, summed per completion as dpo.sequence_logps sums them."""
    mask = completion_mask[:, 1:].to(per_token.dtype)
    logps, lengths = (per_token * mask).sum(dim=1), mask.sum(dim=1)
    chosen, rejected = logps.chunk(2)
    chosen_len, rejected_len = lengths.chunk(2)
    return dpo_loss(chosen, rejected, ref_chosen, ref_rejected, loss_type=loss_type, chosen_lengths=chosen_len,
                    rejected_lengths=rejected_len, **settings)


def value_and_grad(compute, per_token):
    leaf = per_token.clone().requires_grad_(True)
    loss = compute(leaf)
    loss.backward()
    return loss.item(), leaf.grad


def test_trls_hinge_is_offered_as_slic_and_its_name_is_refused_saying_so():
    assert DPOTrainConfig.from_dict({"dpo": {"loss_type": "slic"}}).dpo.loss_type == "slic"
    for loss_type, field in (("hinge", "dpo.loss_type"), (["sigmoid", "hinge"], "dpo.loss_type[1]")):
        with pytest.raises(ConfigError, match="'hinge' is called 'slic' here") as caught:
            DPOTrainConfig.from_dict({"dpo": {"loss_type": loss_type}})
        assert caught.value.field == field


def test_every_trl_loss_but_bco_pair_is_offered():
    assert set(NEW_TYPES) | {"sigmoid", "ipo"} == set(DPO_LOSS_TYPES)
    assert "bco_pair" not in DPO_LOSS_TYPES


@pytest.mark.parametrize("loss_type", NEW_TYPES)
@pytest.mark.parametrize(("beta", "seed"), [(0.1, 0), (0.5, 1), (2.0, 2)])
def test_each_loss_and_its_gradient_match_trl(loss_type, beta, seed):
    per_token, mask, ref_chosen, ref_rejected = random_batch(seed)
    epsilon = SMOOTHING.get(loss_type, 0.0)
    trl_value, trl_grad = value_and_grad(
        lambda x: trl_loss(x, mask, ref_chosen, ref_rejected, [loss_type], beta=beta, label_smoothing=epsilon)[0],
        per_token)
    our_value, our_grad = value_and_grad(
        lambda x: ours(x, mask, ref_chosen, ref_rejected, loss_type, beta=beta,
                       label_smoothing=epsilon).losses.mean(), per_token)
    assert our_value == pytest.approx(trl_value, rel=1e-5, abs=1e-6)
    assert trl_grad.abs().sum() > 0  # the loss moves the log-probs
    torch.testing.assert_close(our_grad, trl_grad, rtol=1e-4, atol=1e-6)


def test_the_losses_are_not_all_the_same_function():
    """Guards the comparison above: on one batch the losses give different values."""
    per_token, mask, ref_chosen, ref_rejected = random_batch(3)
    values = {name: ours(per_token, mask, ref_chosen, ref_rejected, name, beta=0.5,
                         label_smoothing=SMOOTHING.get(name, 0.0)).losses.mean().item() for name in NEW_TYPES}
    assert len({round(v, 6) for v in values.values()}) == len(NEW_TYPES)


@pytest.mark.parametrize("tau", [0.01, 0.05, 1.0])
def test_discopop_tau_matches_trl(tau):
    per_token, mask, ref_chosen, ref_rejected = random_batch(4)
    trl_value, _ = trl_loss(per_token, mask, ref_chosen, ref_rejected, ["discopop"], beta=0.3, discopop_tau=tau)
    out = ours(per_token, mask, ref_chosen, ref_rejected, "discopop", beta=0.3, discopop_tau=tau)
    assert out.losses.mean().item() == pytest.approx(trl_value.item(), rel=1e-5)


def test_sft_is_the_chosen_completions_token_mean_nll():
    per_token, mask, ref_chosen, ref_rejected = random_batch(5)
    b = len(ref_chosen)
    chosen_mask = mask[:b, 1:].bool()
    expected = -per_token[:b][chosen_mask].mean()
    out = ours(per_token, mask, ref_chosen, ref_rejected, "sft", beta=0.1)
    assert torch.allclose(out.losses, expected.expand(b))
    per_sequence_mean = -(per_token[:b].sum(dim=1) / chosen_mask.sum(dim=1)).mean()
    assert abs(per_sequence_mean - expected) > 1e-3  # a token mean, not a mean of sequence means


@pytest.mark.parametrize(("types", "weights"), [
    (["sigmoid", "sft"], [0.8, 1.0]),
    (["slic", "nca_pair", "sft"], None),
    (["ipo", "apo_zero", "discopop"], [0.25, 2.0, 0.0]),
])
def test_a_weighted_combination_matches_trl_and_the_weighted_sum(types, weights):
    per_token, mask, ref_chosen, ref_rejected = random_batch(6)
    trl_value, trl_grad = value_and_grad(
        lambda x: trl_loss(x, mask, ref_chosen, ref_rejected, types, weights=weights, beta=0.4)[0], per_token)
    our_value, our_grad = value_and_grad(
        lambda x: ours(x, mask, ref_chosen, ref_rejected, types, loss_weights=weights,
                       beta=0.4).losses.mean(), per_token)
    assert our_value == pytest.approx(trl_value, rel=1e-5)
    torch.testing.assert_close(our_grad, trl_grad, rtol=1e-4, atol=1e-6)
    parts = [ours(per_token, mask, ref_chosen, ref_rejected, name, beta=0.4).losses
             for name in types]
    summed = sum(w * part for w, part in zip(weights or [1.0] * len(types), parts))
    combined = ours(per_token, mask, ref_chosen, ref_rejected, types, loss_weights=weights, beta=0.4).losses
    torch.testing.assert_close(combined, summed)


def test_label_smoothing_in_a_combination_reaches_the_losses_that_read_it():
    per_token, mask, ref_chosen, ref_rejected = random_batch(7)
    types = ["robust", "sft"]
    trl_value, _ = trl_loss(per_token, mask, ref_chosen, ref_rejected, types, beta=0.2, label_smoothing=0.3)
    out = ours(per_token, mask, ref_chosen, ref_rejected, types, beta=0.2, label_smoothing=0.3)
    assert out.losses.mean().item() == pytest.approx(trl_value.item(), rel=1e-5)


@pytest.mark.parametrize("loss_type", ["slic", "aot", "sft", ["sigmoid", "sft"]])
def test_the_rewards_are_trls_whatever_the_loss(loss_type):
    per_token, mask, ref_chosen, ref_rejected = random_batch(8)
    names = [loss_type] if isinstance(loss_type, str) else loss_type
    _, metrics = trl_loss(per_token, mask, ref_chosen, ref_rejected, names, beta=0.7)
    out = ours(per_token, mask, ref_chosen, ref_rejected, loss_type, beta=0.7)
    assert out.chosen_rewards.mean().item() == pytest.approx(metrics["rewards/chosen"], rel=1e-5)
    assert out.rejected_rewards.mean().item() == pytest.approx(metrics["rewards/rejected"], rel=1e-5)
    margins = out.chosen_rewards - out.rejected_rewards
    assert margins.mean().item() == pytest.approx(metrics["rewards/margins"], rel=1e-5)


def test_the_pure_function_refuses_what_it_cannot_compute():
    per_token, mask, ref_chosen, ref_rejected = random_batch(9)
    with pytest.raises(ValueError, match="bco_pair"):
        ours(per_token, mask, ref_chosen, ref_rejected, "bco_pair", beta=0.1)
    with pytest.raises(ValueError, match="label_smoothing > 0"):
        ours(per_token, mask, ref_chosen, ref_rejected, "exo_pair", beta=0.1)
    with pytest.raises(ValueError, match="weight"):
        ours(per_token, mask, ref_chosen, ref_rejected, ["sigmoid", "sft"], loss_weights=[1.0], beta=0.1)
    chosen, rejected = per_token.sum(dim=1).chunk(2)
    with pytest.raises(ValueError, match="token counts"):
        dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.1, loss_type="sigmoid_norm")


# --- the config ---------------------------------------------------------------------------

@pytest.mark.parametrize(("dpo", "field", "words"), [
    ({"loss_type": "bco_pair"}, "dpo.loss_type", "running mean"),
    ({"loss_type": ["sigmoid", "bco_pair", "sft"]}, "dpo.loss_type[1]", "running mean"),
    ({"loss_type": ["sigmoid", "hinj"]}, "dpo.loss_type[1]", "'hinj' is not one of"),
    ({"loss_type": []}, "dpo.loss_type", "names no loss"),
    ({"loss_type": 3}, "dpo.loss_type", "expected a string"),
    ({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0]}, "dpo.loss_weights", "1 weight(s) for 2"),
    ({"loss_weights": [1.0, 2.0]}, "dpo.loss_weights", "2 weight(s) for 1"),
    ({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, -0.5]}, "dpo.loss_weights[1]", ">= 0"),
    ({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, "x"]}, "dpo.loss_weights[1]", "expected a number"),
    ({"loss_type": ["sigmoid", "sft"], "loss_weights": [True, 1]}, "dpo.loss_weights[0]", "expected a number"),
    ({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 10**400]}, "dpo.loss_weights[1]", "finite"),
    ({"loss_type": ["sigmoid", "sft"], "loss_weights": [0, 0.0]}, "dpo.loss_weights", "all 0"),
    ({"loss_weights": "1"}, "dpo.loss_weights", "expected a list"),
    ({"loss_type": "exo_pair"}, "dpo.label_smoothing", "must be > 0 for the 'exo_pair'"),
    ({"loss_type": "slic", "label_smoothing": 0.1}, "dpo.label_smoothing", "set it to 0 for 'slic'"),
    ({"loss_type": ["ipo", "sft"], "label_smoothing": 0.1}, "dpo.label_smoothing", "'ipo', 'sft'"),
    ({"loss_type": "robust", "label_smoothing": 0.5}, "dpo.label_smoothing", "[0, 0.5)"),
    ({"loss_type": "discopop", "discopop_tau": 0}, "dpo.discopop_tau", "must be > 0"),
])
def test_bad_loss_settings_name_their_field(dpo, field, words):
    with pytest.raises(ConfigError) as caught:
        DPOTrainConfig.from_dict({"dpo": dpo})
    assert caught.value.field == field
    assert words in caught.value.message


@pytest.mark.parametrize("dpo", [
    {"loss_type": "robust", "label_smoothing": 0.1},
    {"loss_type": "exo_pair", "label_smoothing": 1e-3},
    {"loss_type": "aot_unpaired", "label_smoothing": 0.2},
    {"loss_type": ["sigmoid", "sft"], "label_smoothing": 0.1},  # cDPO on the sigmoid part
    {"loss_type": "discopop", "discopop_tau": 0.1},
    {"loss_type": ["sigmoid", "nca_pair", "sft"], "loss_weights": [0.8, 0.2, 1]},
])
def test_good_loss_settings_are_read(dpo):
    DPOTrainConfig.from_dict({"dpo": dpo})


def test_a_list_of_losses_round_trips_through_json():
    import json

    raw = {"dpo": {"loss_type": ["sigmoid", "nca_pair", "sft"], "loss_weights": [0.8, 0.2, 1]}}
    config = DPOTrainConfig.from_dict(raw)
    assert config.dpo.loss_type == ("sigmoid", "nca_pair", "sft") and config.dpo.loss_weights == (0.8, 0.2, 1.0)
    assert config.dpo.loss_types == ("sigmoid", "nca_pair", "sft")
    stored = json.loads(json.dumps(config.to_dict()))
    assert stored["dpo"]["loss_type"] == ["sigmoid", "nca_pair", "sft"]
    assert stored["dpo"]["loss_weights"] == [0.8, 0.2, 1.0]
    assert DPOTrainConfig.from_dict(stored) == config


def test_a_plain_string_stays_a_string_and_old_configs_read_as_before():
    old = {"dpo": {"beta": 0.2, "loss_type": "ipo"}, "optim": {"lr": 5e-7}}
    config = DPOTrainConfig.from_dict(old)
    assert config.dpo.loss_type == "ipo" and config.dpo.loss_types == ("ipo",)
    assert config.dpo.loss_weights is None and config.dpo.discopop_tau == 0.05
    assert config.to_dict()["dpo"]["loss_type"] == "ipo"
    assert DPOTrainConfig.from_dict(config.to_dict()) == config
    assert DPOTrainConfig().dpo.loss_type == "sigmoid"


def test_the_help_names_the_new_losses():
    from workers.engine.dpo_config import dpo_field_help

    help_texts = dpo_field_help()
    assert all(name in help_texts["dpo.loss_type"] for name in NEW_TYPES)
    assert "bco_pair" in help_texts["dpo.loss_type"] and "running mean" in help_texts["dpo.loss_type"]
    assert "0.05" in help_texts["dpo.discopop_tau"] and help_texts["dpo.loss_weights"]


# --- runs ---------------------------------------------------------------------------------

TOY = [PreferencePair(p, "a" * (i % 3 + 1), "b" * (i % 3 + 1))
       for i, p in enumerate(["x", "y", "xy", "yx", "xx", "yy", "xxy", "yyx"])]


def tiny_dpo(**dpo) -> DPOTrainConfig:
    return DPOTrainConfig.from_dict({
        "policy": {"source": "tiny", "tiny": {"alphabet": "abxy", "hidden_size": 32, "num_layers": 1,
                                              "num_heads": 2, "intermediate_size": 64, "seed": 0}},
        "dpo": {"beta": 0.1, "batch_size": 2, "gradient_accumulation_steps": 2, "epochs": 2, "device": "cpu",
                "checkpoint_every": 2, "keep_checkpoints": 0, **dpo},
        "optim": {"lr": 1e-2}})


@pytest.mark.parametrize("dpo", [
    {"loss_type": "slic"},
    {"loss_type": "robust", "label_smoothing": 0.1},
    {"loss_type": "aot"},
    {"loss_type": ["sigmoid", "sft"], "loss_weights": [0.8, 1.0]},
])
def test_a_short_run_trains_with_the_loss(tmp_path, dpo):
    history = []
    result = train_dpo(tiny_dpo(**dpo), TOY, output_dir=tmp_path, on_metrics=lambda step, m: history.append(m))
    assert result.steps_completed == result.total_steps == 4
    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in history)
    assert history[0]["rewards/margins"] == 0.0  # the policy is the reference at step 1
    assert history[-1]["rewards/margins"] > 0  # and learns to prefer the chosen answers
    assert history[-1]["grad_norm"] > 0
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and (result.final_checkpoint / "config.json").is_file()


def test_a_combined_loss_is_the_weighted_sum_of_its_parts_in_a_run(tmp_path):
    """Step 1 (policy = reference) of a combined run logs the weighted sum of the parts' losses."""
    def first_loss(out, **dpo):
        history = []
        train_dpo(tiny_dpo(epochs=1, gradient_accumulation_steps=4, batch_size=2, **dpo), TOY, output_dir=out,
                  on_metrics=lambda step, m: history.append(m))
        return history[0]["loss"]

    sigmoid = first_loss(tmp_path / "a", loss_type="sigmoid")
    sft = first_loss(tmp_path / "b", loss_type="sft")
    combined = first_loss(tmp_path / "c", loss_type=["sigmoid", "sft"], loss_weights=[0.8, 1.0])
    assert combined == pytest.approx(0.8 * sigmoid + sft, rel=1e-5)
