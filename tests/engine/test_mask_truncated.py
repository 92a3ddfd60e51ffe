"""algorithm.mask_truncated_completions (DAPO's overlong filtering, TRL's option of the same
name): completions stopped by max_new_tokens leave the loss's completion mask."""

import math

import pytest
import torch
from safetensors.torch import load_file

from workers.engine import Callbacks, PromptRecord, TrainConfig, train
from workers.engine.chunked_logprobs import fast_token_logprobs
from workers.engine.config import AlgorithmConfig, OptimConfig, config_field_help
from workers.engine.errors import ConfigError
from workers.engine.losses import token_logprobs
from workers.engine.rollout import left_pad
from workers.engine.tiny import build_tiny_policy
from workers.engine.update import UpdateBatch, policy_update

TINY = {"alphabet": "abc", "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}
# rows 0 and 3 hit max_new_tokens; their completions have 3 and 2 of the batch's 9 tokens
TRUNCATED = torch.tensor([True, False, False, True])
COMPLETION_MASK = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 1, 0]])
PROMPTS = [PromptRecord(p, id=f"p{i}") for i, p in enumerate(["a", "b", "ab", "ba", "bb"])]


def _batch(tok, *, truncated=TRUNCATED, completion_mask=COMPLETION_MASK):
    ids, mask = left_pad([[3, 6, 6, 7, 8, 6], [3, 7, 6, 2, 2, 2], [6, 7, 7, 8, 6, 7],
                          [3, 7, 7, 2, 6, 2]], tok.pad_token_id, "cpu")
    ids[1, :2] = tok.pad_token_id
    mask[1, :2] = 0
    mask[:, -3:] = COMPLETION_MASK
    return UpdateBatch(ids, mask, completion_mask.clone(), torch.tensor([1.0, -1.0, 0.5, -0.5]),
                       truncated=truncated)


def _by_hand(tok):
    """The batch with the truncated rows' completion masks zeroed by hand, nothing flagged."""
    zeroed = COMPLETION_MASK * (~TRUNCATED)[:, None]
    return _batch(tok, truncated=None, completion_mask=zeroed)


def _sgd_update(batch, algo, *, fast=False, micro_batch_size=2, ref_seed=None):
    """(metrics, each parameter's step) of one ``policy_update`` with SGD at lr 1, so a step
    is the (clipped) gradient itself."""
    model, _ = build_tiny_policy(**TINY)
    ref = build_tiny_policy(**TINY, seed=ref_seed)[0] if ref_seed is not None else None
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    metrics = policy_update(model, optimizer, batch, algo=algo, optim=OptimConfig(), lr=1.0,
                            temperature=1.0, max_new_tokens=3, micro_batch_size=micro_batch_size,
                            ref_model=ref, fast=fast)
    return metrics, [p.detach() - b for p, b in zip(model.parameters(), before)]


def _same(a, b, *, rel=1e-5, atol=1e-7):
    (m_a, d_a), (m_b, d_b) = a, b
    assert m_a.keys() == m_b.keys()
    for key in m_a:
        assert m_a[key] == pytest.approx(m_b[key], rel=rel, abs=atol), key
    for x, y in zip(d_a, d_b):
        assert torch.allclose(x, y, rtol=rel, atol=atol), (x - y).abs().max()


ALGOS = {
    "token_mean": {"loss_aggregation": "token_mean"},
    "seq_mean_token_mean": {"loss_aggregation": "seq_mean_token_mean"},
    "seq_mean_token_sum_norm": {"loss_aggregation": "seq_mean_token_sum_norm"},
    "mu3": {"num_iterations": 3},
    "mu3-sequence-kl": {"num_iterations": 3, "importance_level": "sequence", "beta": 0.1},
    "mu3-cispo-grpo": {"num_iterations": 3, "surrogate": "cispo", "loss_aggregation": "seq_mean_token_mean"},
}


@pytest.mark.parametrize("extra", ALGOS.values(), ids=ALGOS.keys())
def test_the_masked_update_is_the_update_with_truncated_rows_zeroed_by_hand(extra):
    _, tok = build_tiny_policy(**TINY)
    ref_seed = 1 if extra.get("beta") else None
    masked = _sgd_update(_batch(tok), AlgorithmConfig(mask_truncated_completions=True, **extra),
                         ref_seed=ref_seed)
    by_hand = _sgd_update(_by_hand(tok), AlgorithmConfig(**extra), ref_seed=ref_seed)
    assert masked[0].pop("loss/masked_token_fraction") == pytest.approx(5 / 9)
    _same(masked, by_hand, rel=1e-4, atol=1e-6)  # other micro-batches: rounding differs
    unmasked = _sgd_update(_batch(tok), AlgorithmConfig(**extra), ref_seed=ref_seed)
    assert any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(masked[1], unmasked[1]))


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean"])
def test_the_masked_loss_divides_as_trl_does(aggregation):
    """μ = 1: the loss is -A · ratio over the kept tokens, ratio = π / sg(π) = 1; token_mean
    divides by the kept tokens alone, seq_mean_token_mean by every sequence, truncated ones
    included (TRL's 'dapo' and 'grpo' losses after completion_mask * ~is_truncated)."""
    _, tok = build_tiny_policy(**TINY)
    batch = _batch(tok)
    model, _ = build_tiny_policy(**TINY)
    logprobs, _ = token_logprobs(model, batch.input_ids, batch.attention_mask, 3, 1.0)
    kept = (COMPLETION_MASK * (~TRUNCATED)[:, None]).float()
    per_token = -batch.advantages[:, None] * torch.exp(logprobs - logprobs.detach()) * kept
    if aggregation == "token_mean":
        loss = per_token.sum() / kept.sum()
    else:
        loss = (per_token.sum(dim=1) / kept.sum(dim=1).clamp(min=1)).sum() / 4
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    want = [-p.grad for p in model.parameters()]
    metrics, steps = _sgd_update(batch, AlgorithmConfig(mask_truncated_completions=True,
                                                        loss_aggregation=aggregation))
    assert metrics["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert all(torch.allclose(s, w, atol=1e-7) for s, w in zip(steps, want))


def test_with_the_knob_off_the_truncated_flags_change_nothing():
    _, tok = build_tiny_policy(**TINY)
    for algo in (AlgorithmConfig(), AlgorithmConfig(num_iterations=3, beta=0.1)):
        ref_seed = 1 if algo.beta else None
        flagged = _sgd_update(_batch(tok), algo, ref_seed=ref_seed)
        plain = _sgd_update(_batch(tok, truncated=None), algo, ref_seed=ref_seed)
        assert "loss/masked_token_fraction" not in flagged[0]
        assert flagged[0] == plain[0]
        assert all(torch.equal(a, b) for a, b in zip(flagged[1], plain[1]))


@pytest.mark.parametrize("extra", [{}, {"num_iterations": 2, "beta": 0.1},
                                   {"num_iterations": 2, "importance_level": "sequence"}],
                         ids=["mu1", "mu2-kl", "mu2-sequence"])
def test_fast_and_plain_paths_agree_with_the_knob_on(extra, monkeypatch):
    from workers.engine import update

    calls = []
    monkeypatch.setattr(update, "fast_token_logprobs",
                        lambda *a, **k: calls.append(1) or fast_token_logprobs(*a, **k))
    _, tok = build_tiny_policy(**TINY)
    algo = AlgorithmConfig(mask_truncated_completions=True, **extra)
    ref_seed = 1 if algo.beta else None
    plain = _sgd_update(_batch(tok), algo, ref_seed=ref_seed)
    assert not calls
    fast = _sgd_update(_batch(tok), algo, fast=True, ref_seed=ref_seed)
    assert calls  # the fast update went through the chunked head
    _same(plain, fast, rel=1e-4, atol=1e-6)
    assert any(bool(s.abs().max() > 1e-3) for s in plain[1])  # the update moved the weights


def test_micro_batches_do_not_change_the_masked_update():
    _, tok = build_tiny_policy(**TINY)
    algo = AlgorithmConfig(mask_truncated_completions=True, num_iterations=2)
    _same(_sgd_update(_batch(tok), algo, micro_batch_size=1),
          _sgd_update(_batch(tok), algo, micro_batch_size=4))


def test_truncated_rows_get_no_forward_pass(monkeypatch):
    from workers.engine import update

    rows_seen = []

    def counting(model, input_ids, *args, **kwargs):
        rows_seen.append(input_ids.shape[0])
        return token_logprobs(model, input_ids, *args, **kwargs)
    monkeypatch.setattr(update, "token_logprobs", counting)
    _, tok = build_tiny_policy(**TINY)
    batch = _batch(tok)
    batch.advantages = torch.tensor([1.0, 0.0, 0.5, -0.5])  # row 1 only needs the no-grad pass
    _sgd_update(batch, AlgorithmConfig(mask_truncated_completions=True), micro_batch_size=4)
    assert sorted(rows_seen) == [1, 1]  # rows 1 and 2; rows 0 and 3 never ran


def test_an_all_truncated_batch_trains_nothing_and_stays_finite():
    """No token left in the loss: no forward, no optimiser step (AdamW would still move the
    weights by its momentum and weight decay), zeros for the loss's metrics."""
    model, tok = build_tiny_policy(**TINY)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for algo in (AlgorithmConfig(mask_truncated_completions=True),
                 AlgorithmConfig(mask_truncated_completions=True, num_iterations=3,
                                 importance_level="sequence", loss_aggregation="seq_mean_token_mean")):
        metrics = policy_update(model, optimizer, _batch(tok, truncated=torch.ones(4, dtype=torch.bool)),
                                algo=algo, optim=OptimConfig(), lr=1e-2, temperature=1.0,
                                max_new_tokens=3, micro_batch_size=2)
        assert all(math.isfinite(v) for v in metrics.values())
        assert metrics["loss/masked_token_fraction"] == 1.0
        assert metrics["loss"] == 0.0 and metrics["grad_norm"] == 0.0 and metrics["learning_rate"] == 1e-2
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not optimizer.state  # never stepped


def test_the_knob_needs_the_truncated_flags():
    _, tok = build_tiny_policy(**TINY)
    with pytest.raises(ValueError, match="truncated"):
        _sgd_update(_batch(tok, truncated=None), AlgorithmConfig(mask_truncated_completions=True))


# --- config --------------------------------------------------------------------------------

def test_the_knob_is_off_by_default_and_round_trips():
    assert AlgorithmConfig().mask_truncated_completions is False
    config = TrainConfig.from_dict({"algorithm": {"mask_truncated_completions": True},
                                    "policy": {"source": "tiny"}})
    assert config.algorithm.mask_truncated_completions is True
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert "max_new_tokens" in config_field_help()["algorithm.mask_truncated_completions"]


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_the_knob_must_be_true_or_false(value):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"algorithm": {"mask_truncated_completions": value},
                               "policy": {"source": "tiny"}})
    assert info.value.field == "algorithm.mask_truncated_completions"
    assert "expected true or false" in info.value.message


# --- through the trainer -------------------------------------------------------------------

class Recorder(Callbacks):
    def __init__(self):
        super().__init__()
        self.metrics, self.rollouts = {}, {}

    def on_metrics(self, step, metrics):
        self.metrics[step] = metrics

    def on_rollouts(self, step, records):
        self.rollouts[step] = records


def _run(tiny_cfg, tmp_path, monkeypatch, *, mask, steps=3, fast=False):
    """(recorder, the truncated flags each update was handed) of a short tiny run."""
    from workers.engine import trainer

    handed = []
    original = trainer.policy_update

    def spy(model, optimizer, batch, **kwargs):
        handed.append(None if batch.truncated is None else batch.truncated.tolist())
        return original(model, optimizer, batch, **kwargs)
    monkeypatch.setattr(trainer, "policy_update", spy)
    config = TrainConfig.from_dict(tiny_cfg(
        rollout={"num_generations": 4, "prompts_per_step": 2, "max_new_tokens": 3},
        algorithm={"mask_truncated_completions": mask, "num_iterations": 2},
        train={"total_steps": steps, "checkpoint_every": 100, "device": "cpu",
               "fast_path": fast, "micro_batch_size": 3}))
    recorder = Recorder()
    result = train(config, PROMPTS, recorder, output_dir=tmp_path)
    return recorder, handed, result


def test_the_trainer_flags_completions_stopped_by_max_new_tokens(tiny_cfg, tmp_path, monkeypatch):
    recorder, handed, _ = _run(tiny_cfg, tmp_path, monkeypatch, mask=True)
    fractions = []
    for step, records in sorted(recorder.rollouts.items()):
        trained = [r for r in records if r["trained"]]
        assert handed.pop(0) == [r["finish_reason"] == "length" for r in trained]
        tokens = sum(r["length"] for r in trained)
        masked = sum(r["length"] for r in trained if r["finish_reason"] == "length")
        fraction = recorder.metrics[step]["loss/masked_token_fraction"]
        assert fraction == pytest.approx(masked / tokens)
        fractions.append(fraction)
    assert any(0 < f < 1 for f in fractions)  # both kinds of completion were trained on


def test_with_the_knob_off_the_trainer_hands_no_flags_and_logs_no_fraction(tiny_cfg, tmp_path, monkeypatch):
    recorder, handed, _ = _run(tiny_cfg, tmp_path, monkeypatch, mask=False, steps=2)
    assert handed == [None, None]
    assert all("loss/masked_token_fraction" not in m for m in recorder.metrics.values())


def test_the_fast_path_trains_like_the_plain_path_with_the_knob_on(tiny_cfg, tmp_path, monkeypatch):
    runs = {}
    for fast in (False, True):
        recorder, _, result = _run(tiny_cfg, tmp_path / str(fast), monkeypatch, mask=True, fast=fast)
        runs[fast] = (recorder, load_file(result.final_checkpoint / "model.safetensors"))
    (plain, w_plain), (fast, w_fast) = runs[False], runs[True]
    for step, metrics in plain.metrics.items():
        for key, value in metrics.items():
            if not key.startswith(("timing/", "throughput/", "system/")):
                assert fast.metrics[step][key] == pytest.approx(value, rel=1e-3, abs=1e-5), key
    assert all(torch.allclose(w_plain[k], w_fast[k], atol=1e-4) for k in w_plain)


def test_a_step_whose_completions_were_all_truncated_leaves_the_weights(tiny_cfg, tmp_path, monkeypatch):
    from workers.engine import trainer

    original = trainer.sample_completions

    def all_truncated(*args, **kwargs):
        batch = original(*args, **kwargs)
        batch.finish_reasons = ["length"] * len(batch.finish_reasons)
        return batch
    monkeypatch.setattr(trainer, "sample_completions", all_truncated)
    recorder, _, result = _run(tiny_cfg, tmp_path, monkeypatch, mask=True, steps=1)
    metrics = recorder.metrics[1]
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["loss/masked_token_fraction"] == 1.0 and metrics["grad_norm"] == 0.0
    sizes = tiny_cfg()["policy"]["tiny"]
    initial, _ = build_tiny_policy(**sizes)
    saved = load_file(result.final_checkpoint / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in initial.state_dict().items() if k in saved)
    assert saved.keys() & initial.state_dict().keys()
