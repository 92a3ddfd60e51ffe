"""Loss pieces against values computed here by hand on small tensors."""

import math

import pytest
import torch

from workers.engine.config import AlgorithmConfig, OptimConfig
from workers.engine.losses import (aggregate_loss, clipped_policy_loss, clipped_weight_policy_loss,
                                   importance_log_ratio, kl_k3, token_logprobs)
from workers.engine.rollout import left_pad
from workers.engine.tiny import build_tiny_policy
from workers.engine.update import UpdateBatch, learning_rate_at, policy_update

# two sequences, T = 3; the second has 2 real tokens
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 6.0, 100.0]])


def test_token_mean_divides_by_all_real_tokens():
    got = aggregate_loss(VALUES, MASK, "token_mean", max_new_tokens=8)
    assert got.item() == pytest.approx((1 + 2 + 3 + 4 + 6) / 5)


def test_seq_mean_token_mean_averages_per_sequence_means():
    got = aggregate_loss(VALUES, MASK, "seq_mean_token_mean", max_new_tokens=8)
    assert got.item() == pytest.approx(((1 + 2 + 3) / 3 + (4 + 6) / 2) / 2)


def test_seq_mean_token_sum_norm_uses_constant_divisor():
    got = aggregate_loss(VALUES, MASK, "seq_mean_token_sum_norm", max_new_tokens=8)
    assert got.item() == pytest.approx(((1 + 2 + 3) / 8 + (4 + 6) / 8) / 2)


@pytest.mark.parametrize("mode", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
def test_micro_batches_sum_to_the_full_batch_value(mode):
    full = aggregate_loss(VALUES, MASK, mode, max_new_tokens=8)
    parts = sum(aggregate_loss(VALUES[i:i + 1], MASK[i:i + 1], mode, max_new_tokens=8,
                               batch_tokens=float(MASK.sum()), batch_sequences=2)
                for i in range(2))
    assert parts.item() == pytest.approx(full.item())


def test_clipped_loss_token_level_by_hand():
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))  # ratios vs old = 1: 1.5, 0.5, 1.1
    old = torch.zeros(1, 3)
    mask = torch.ones(1, 3)
    pos = clipped_policy_loss(logp, old, torch.tensor([2.0]), mask, eps_low=0.2, eps_high=0.28)
    # A > 0: loss = max(-A r, -A clip(r)) = -A * min(r, clip(r))
    assert pos.pg_loss1[0].tolist() == pytest.approx([-3.0, -1.0, -2.2])
    assert pos.pg_loss2[0].tolist() == pytest.approx([-2.56, -1.6, -2.2])
    assert pos.pg_loss[0].tolist() == pytest.approx([-2.56, -1.0, -2.2])
    assert pos.clipped_high[0].tolist() == [True, False, False]
    assert pos.clipped_low[0].tolist() == [False, False, False]
    neg = clipped_policy_loss(logp, old, torch.tensor([-1.0]), mask, eps_low=0.2, eps_high=0.28)
    # A < 0: loss = max(r, clip(r)) * |A|
    assert neg.pg_loss[0].tolist() == pytest.approx([1.5, 0.8, 1.1])
    assert neg.clipped_low[0].tolist() == [False, True, False]
    assert neg.clipped_region[0].tolist() == [False, True, False]


def test_per_sequence_clips_clip_each_row_as_its_own_numbers_would():
    """DISPO: each completion clipped by its own pair (correct ones by one, incorrect by another)."""
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1], [1.5, 0.5, 1.1], [1.4, 0.7, 0.95]]))
    old, mask = torch.zeros(3, 3), torch.ones(3, 3)
    adv = torch.tensor([2.0, -1.0, 0.5])
    low, high = torch.tensor([0.2, 0.05, 0.4]), torch.tensor([0.28, 0.6, 0.3])
    rows = clipped_policy_loss(logp, old, adv, mask, eps_low=low, eps_high=high)
    for i in range(3):
        alone = clipped_policy_loss(logp[i:i + 1], old[i:i + 1], adv[i:i + 1], mask[i:i + 1],
                                    eps_low=float(low[i]), eps_high=float(high[i]))
        for name in ("pg_loss", "pg_loss2", "clipped_low", "clipped_high"):
            assert torch.allclose(getattr(rows, name)[i].float(), getattr(alone, name)[0].float()), (i, name)
    assert rows.clipped_low[1].tolist() == [False, True, False]  # 0.5 < 1 - 0.05
    assert rows.pg_loss[1].tolist() == pytest.approx([1.5, 0.95, 1.1])
    # One pair as numbers or as tensors is the same loss.
    same = clipped_policy_loss(logp, old, adv, mask, eps_low=torch.full((3,), 0.2), eps_high=0.28)
    assert torch.equal(same.pg_loss, clipped_policy_loss(logp, old, adv, mask, eps_low=0.2, eps_high=0.28).pg_loss)


def test_clips_per_row_give_incorrect_completions_their_own_clips():
    from workers.engine.update import clips_per_row

    assert clips_per_row(AlgorithmConfig(), None) == (0.2, 0.28)
    algo = AlgorithmConfig(clip_eps_low_incorrect=0.05)  # its upper clip stays clip_eps_high
    low, high = clips_per_row(algo, torch.tensor([True, False, True]))
    assert low.tolist() == pytest.approx([0.2, 0.05, 0.2]) and high.tolist() == pytest.approx([0.28] * 3)
    with pytest.raises(ValueError, match="correct"):
        clips_per_row(algo, None)


def test_an_update_with_incorrect_clips_equal_to_the_usual_ones_is_the_usual_update():
    """With μ > 1 the clips bind; incorrect clips equal to the usual ones change nothing, other
    ones change the step."""
    results = []
    for extra in ({}, {"clip_eps_low_incorrect": 0.2, "clip_eps_high_incorrect": 0.28},
                  {"clip_eps_low_incorrect": 0.0, "clip_eps_high_incorrect": 0.0}):
        model, tok = build_tiny_policy(alphabet="abc", hidden_size=32, num_layers=1, num_heads=2,
                                       intermediate_size=64)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        batch = _update_batch(tok)
        batch.correct = torch.tensor([True, False, True, False])
        metrics = policy_update(model, optimizer, batch, algo=AlgorithmConfig(num_iterations=4, **extra),
                                optim=OptimConfig(), lr=0.05, temperature=1.0, max_new_tokens=2,
                                micro_batch_size=4)
        results.append((metrics, [p.detach().clone() for p in model.parameters()]))
    (plain, p0), (equal, p1), (tight, p2) = results
    assert "clip_ratio/incorrect_region_mean" not in plain
    assert 0 <= equal.pop("clip_ratio/incorrect_region_mean") <= equal["clip_ratio/region_mean"]
    assert tight["clip_ratio/incorrect_region_mean"] > 0
    assert all(torch.equal(a, b) for a, b in zip(p0, p1)) and plain == equal
    assert plain["clip_ratio/region_mean"] > 0  # the clips bound in this update
    assert tight["clip_ratio/region_mean"] > plain["clip_ratio/region_mean"]
    assert any(not torch.allclose(a, b) for a, b in zip(p0, p2))


def test_cispo_clips_the_weight_and_keeps_every_tokens_gradient():
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1]])).requires_grad_()
    old, mask = torch.zeros(1, 3), torch.ones(1, 3)
    for adv, clipped_weight in ((2.0, [1.28, 0.8, 1.1]), (-1.0, [1.28, 0.8, 1.1])):
        logp.grad = None
        terms = clipped_weight_policy_loss(logp, old, torch.tensor([adv]), mask, eps_low=0.2, eps_high=0.28)
        terms.pg_loss.sum().backward()
        # d/d log pi of -A * sg(clip(r)) * log pi: -A * clip(r), on clipped tokens too.
        assert logp.grad[0].tolist() == pytest.approx([-adv * w for w in clipped_weight])
        assert terms.clipped_high[0].tolist() == [True, False, False]  # whatever the advantage's sign
        assert terms.clipped_low[0].tolist() == [False, True, False]
    zero = clipped_weight_policy_loss(logp, old, torch.tensor([0.0]), mask, eps_low=0.2, eps_high=0.28)
    assert not zero.clipped_region.any()


def test_cispo_keeps_padding_out_of_the_loss_even_at_minus_infinity():
    logp = torch.tensor([[math.log(1.5), -math.inf]], requires_grad=True)
    mask = torch.tensor([[1.0, 0.0]])
    terms = clipped_weight_policy_loss(logp, torch.zeros(1, 2), torch.tensor([1.0]), mask, eps_low=0.2, eps_high=0.28)
    loss = aggregate_loss(terms.pg_loss, mask, "token_mean", max_new_tokens=2)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() == pytest.approx(-1.28 * math.log(1.5))
    assert logp.grad.tolist() == [[pytest.approx(-1.28), 0.0]]


def test_the_two_surrogates_take_the_same_first_step():
    """At ratio 1 (μ = 1) the gradient of both is A * grad log pi."""
    params = []
    for surrogate in ("ppo", "cispo"):
        model, tok = build_tiny_policy(alphabet="abc", hidden_size=32, num_layers=1, num_heads=2,
                                       intermediate_size=64)
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        policy_update(model, optimizer, _update_batch(tok), algo=AlgorithmConfig(surrogate=surrogate),
                      optim=OptimConfig(max_grad_norm=0), lr=1.0, temperature=1.0, max_new_tokens=2,
                      micro_batch_size=4)
        params.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*params))


@pytest.mark.parametrize("surrogate, binds", [("ppo", False), ("cispo", True)])
def test_an_incorrect_completions_upper_clip_binds_only_under_cispo(surrogate, binds):
    """With a 0/1 reward alone incorrect completions have advantages <= 0: the 'ppo' surrogate
    never clips them from above, 'cispo' does (all four DISPO clips bind)."""
    params = []
    for extra in ({}, {"clip_eps_high_incorrect": 0.0}):
        model, tok = build_tiny_policy(alphabet="abc", hidden_size=32, num_layers=1, num_heads=2,
                                       intermediate_size=64)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        batch = _update_batch(tok)  # advantages 1, -1, 0.5, -0.5
        batch.correct = torch.tensor([True, False, True, False])
        policy_update(model, optimizer, batch, algo=AlgorithmConfig(num_iterations=4, surrogate=surrogate, **extra),
                      optim=OptimConfig(), lr=0.05, temperature=1.0, max_new_tokens=2, micro_batch_size=4)
        params.append([p.detach().clone() for p in model.parameters()])
    same = all(torch.equal(a, b) for a, b in zip(*params))
    assert same is not binds


def test_sequence_ratio_is_geometric_mean_of_token_ratios():
    logp = torch.log(torch.tensor([[2.0, 0.5, 4.0], [3.0, 3.0, 9.0]]))
    old = torch.zeros(2, 3)
    ratio = importance_log_ratio(logp, old, MASK, "sequence").exp()
    assert ratio[0].tolist() == pytest.approx([(2 * 0.5 * 4) ** (1 / 3)] * 3)
    assert ratio[1].tolist() == pytest.approx([3.0] * 3)  # the masked 9 is ignored


def test_k3_kl_by_hand():
    logp = torch.tensor([math.log(0.5), math.log(0.2)])
    ref = torch.tensor([math.log(0.25), math.log(0.2)])
    d = math.log(0.25) - math.log(0.5)
    assert kl_k3(logp, ref).tolist() == pytest.approx([math.exp(d) - d - 1, 0.0], abs=1e-7)


def test_token_logprobs_match_unpadded_forward():
    model, tok = build_tiny_policy(alphabet="abc", hidden_size=32, num_layers=2, num_heads=2,
                                   intermediate_size=64)
    seqs = [[3, 6, 7, 6, 8], [7, 7, 8]]  # last T=2 tokens are the completions
    ids, mask = left_pad(seqs, tok.pad_token_id, "cpu")
    got, entropy = token_logprobs(model, ids, mask, 2, 0.7, with_entropy=True)
    for i, seq in enumerate(seqs):
        logits = model(input_ids=torch.tensor([seq])).logits[0].detach() / 0.7
        logprobs = torch.log_softmax(logits, -1)
        expected = [logprobs[len(seq) - 3 + k, seq[len(seq) - 2 + k]].item() for k in range(2)]
        assert got[i].tolist() == pytest.approx(expected, abs=1e-5)
        probs = logprobs[len(seq) - 3].exp()
        assert entropy[i, 0].item() == pytest.approx(-(probs * logprobs[len(seq) - 3]).sum()
                                                     .item(), abs=1e-5)


def test_learning_rate_warms_up_linearly():
    cfg = OptimConfig(lr=1e-3, warmup_steps=4)
    assert [learning_rate_at(s, cfg) for s in (1, 2, 4, 9)] == pytest.approx(
        [2.5e-4, 5e-4, 1e-3, 1e-3])
    assert learning_rate_at(1, OptimConfig(lr=1e-3)) == 1e-3


def _update_batch(tok):
    ids, mask = left_pad([[3, 6, 6, 7], [3, 7, 6, 2], [3, 6, 7, 7], [3, 7, 7, 2]],
                         tok.pad_token_id, "cpu")
    completion_mask = torch.tensor([[1, 1], [1, 1], [1, 1], [1, 0]])
    mask[:, -2:] = completion_mask
    return UpdateBatch(ids, mask, completion_mask, torch.tensor([1.0, -1.0, 0.5, -0.5]))


def test_update_with_one_iteration_never_clips_and_respects_grad_clip():
    model, tok = build_tiny_policy(alphabet="abc", hidden_size=32, num_layers=1, num_heads=2,
                                   intermediate_size=64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    metrics = policy_update(model, optimizer, _update_batch(tok), algo=AlgorithmConfig(),
                            optim=OptimConfig(max_grad_norm=1e-3), lr=1e-3, temperature=1.0,
                            max_new_tokens=2, micro_batch_size=3)
    assert metrics["clip_ratio/region_mean"] == 0.0
    assert metrics["grad_norm"] > 1e-3  # reported before clipping
    assert metrics["kl"] == 0.0 and metrics["entropy"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters() if p.grad is not None)
                       ) if any(p.grad is not None for p in model.parameters()) else 0
    assert total == 0  # gradients are cleared after the step


def test_micro_batch_size_does_not_change_the_update():
    results = []
    for size in (1, 4):
        model, tok = build_tiny_policy(alphabet="abc", hidden_size=32, num_layers=1,
                                       num_heads=2, intermediate_size=64)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-1)  # Adam would amplify 1e-9 noise
        algo = AlgorithmConfig(num_iterations=3, beta=0.1)
        ref, _ = build_tiny_policy(alphabet="abc", hidden_size=32, num_layers=1, num_heads=2,
                                   intermediate_size=64, seed=1)
        metrics = policy_update(model, optimizer, _update_batch(tok), algo=algo,
                                optim=OptimConfig(), lr=1e-2, temperature=1.0,
                                max_new_tokens=2, micro_batch_size=size, ref_model=ref)
        results.append((metrics, [p.detach().clone() for p in model.parameters()]))
    (m1, p1), (m4, p4) = results
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(p1, p4))
    assert m1["kl"] == pytest.approx(m4["kl"], rel=1e-4) and m1["kl"] > 0
    assert m1["clip_ratio/region_mean"] == pytest.approx(m4["clip_ratio/region_mean"])


def test_zero_advantage_rows_skip_backward_but_the_step_is_the_full_batch_step():
    results = []
    for manual in (False, True):
        model, tok = build_tiny_policy(alphabet="abc", hidden_size=32, num_layers=1,
                                       num_heads=2, intermediate_size=64)
        batch = _update_batch(tok)
        batch.advantages = torch.tensor([1.0, 0.0, 0.5, 0.0])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        if manual:  # mu = 1: ratio == 1, so the loss is -A * logp over every real token
            logprobs, entropy = token_logprobs(model, batch.input_ids, batch.attention_mask, 2,
                                               1.0, with_entropy=True)
            m = batch.completion_mask.float()
            loss = -(batch.advantages[:, None] * logprobs * m).sum() / m.sum()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            metrics = {"entropy": float((entropy * m).sum() / m.sum())}
        else:
            metrics = policy_update(model, optimizer, batch, algo=AlgorithmConfig(),
                                    optim=OptimConfig(), lr=0.1, temperature=1.0,
                                    max_new_tokens=2, micro_batch_size=2)
        results.append((metrics, [p.detach().clone() for p in model.parameters()]))
    (got, p_got), (want, p_want) = results
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(p_got, p_want))
    assert got["entropy"] == pytest.approx(want["entropy"], rel=1e-5)


def test_all_zero_advantages_still_step_adam_momentum():
    model, tok = build_tiny_policy(alphabet="abc", hidden_size=32, num_layers=1, num_heads=2,
                                   intermediate_size=64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = _update_batch(tok)
    common = dict(algo=AlgorithmConfig(), optim=OptimConfig(), lr=1e-2, temperature=1.0,
                  max_new_tokens=2, micro_batch_size=4)
    policy_update(model, optimizer, batch, **common)
    before = [p.detach().clone() for p in model.parameters()]
    batch.advantages = torch.zeros(4)
    metrics = policy_update(model, optimizer, batch, **common)
    assert metrics["grad_norm"] == 0.0 and metrics["entropy"] > 0
    # zero gradient, but Adam's first moment keeps moving the weights, as in a full pass
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
