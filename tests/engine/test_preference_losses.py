"""Preference losses against values worked out by hand with math.log / math.exp."""

import math

import pytest
import torch

from workers.engine.preference_losses import bradley_terry_loss, pairwise_accuracy, plackett_luce_loss

torch.set_num_threads(1)


def nll_win(d: float) -> float:
    """−log σ(d) written out."""
    return math.log(1 + math.exp(-d))


def test_bradley_terry_is_mean_negative_log_sigmoid_of_the_difference():
    chosen, rejected = torch.tensor([1.0, 0.0, 3.0]), torch.tensor([0.0, 2.0, 3.0])
    expected = (nll_win(1.0) + nll_win(-2.0) + nll_win(0.0)) / 3
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(expected, rel=1e-6)


def test_bradley_terry_margin_per_pair_shifts_the_difference():
    chosen, rejected = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.0])
    loss = bradley_terry_loss(chosen, rejected, margin=torch.tensor([0.25, 2.0]), reduction="none")
    assert loss.tolist() == pytest.approx([nll_win(0.75), nll_win(-1.5)], rel=1e-6)


def test_bradley_terry_centering_adds_lambda_times_squared_sum():
    chosen, rejected = torch.tensor([2.0]), torch.tensor([1.0])
    loss = bradley_terry_loss(chosen, rejected, center_coef=0.1)
    assert loss.item() == pytest.approx(nll_win(1.0) + 0.1 * 3.0**2, rel=1e-6)


def test_centering_gradient_pulls_the_reward_offset_toward_zero():
    chosen = torch.tensor([5.0], requires_grad=True)
    rejected = torch.tensor([4.0], requires_grad=True)
    bradley_terry_loss(chosen, rejected, center_coef=0.1).backward()
    assert chosen.grad.item() + rejected.grad.item() > 0  # a descent step lowers both


def test_dropped_ties_add_nothing_and_do_not_count_in_the_mean():
    chosen, rejected = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 5.0])
    tie = torch.tensor([False, True])
    assert bradley_terry_loss(chosen, rejected, tie=tie).item() == pytest.approx(nll_win(1.0), rel=1e-6)
    assert bradley_terry_loss(chosen, rejected, tie=tie, reduction="none")[1].item() == 0.0


def test_half_ties_are_cross_entropy_with_target_one_half():
    chosen, rejected, tie = torch.tensor([1.5]), torch.tensor([0.0]), torch.tensor([True])
    loss = bradley_terry_loss(chosen, rejected, tie=tie, tie_handling="half")
    assert loss.item() == pytest.approx(0.5 * nll_win(1.5) + 0.5 * nll_win(-1.5), rel=1e-6)


def test_rao_kupper_matches_its_probabilities_written_with_theta():
    tau, r_i, r_j = 0.7, 0.9, 0.2
    theta, a, b = math.exp(tau), math.exp(r_i), math.exp(r_j)
    p_win, p_loss = a / (a + theta * b), b / (b + theta * a)
    p_tie = (theta**2 - 1) * a * b / ((a + theta * b) * (b + theta * a))
    assert p_win + p_loss + p_tie == pytest.approx(1.0)

    chosen, rejected = torch.tensor([r_i, r_i]), torch.tensor([r_j, r_j])
    loss = bradley_terry_loss(chosen, rejected, tie=torch.tensor([False, True]), tie_handling="rao_kupper",
                              tie_threshold=tau, reduction="none")  # fmt: skip
    assert loss.tolist() == pytest.approx([-math.log(p_win), -math.log(p_tie)], rel=1e-5)


def test_rao_kupper_tie_pulls_the_two_rewards_together():
    chosen = torch.tensor([2.0], requires_grad=True)
    rejected = torch.tensor([-1.0], requires_grad=True)
    bradley_terry_loss(chosen, rejected, tie=torch.tensor([True]), tie_handling="rao_kupper").backward()
    assert chosen.grad.item() > 0 > rejected.grad.item()  # descent lowers the higher, raises the lower


def test_ensemble_rewards_broadcast_over_members():
    chosen = torch.tensor([[1.0, 2.0], [0.0, -1.0]])  # (K=2, P=2)
    rejected = torch.zeros(2, 2)
    expected = (nll_win(1.0) + nll_win(2.0) + nll_win(0.0) + nll_win(-1.0)) / 4
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(expected, rel=1e-6)


def test_weight_two_counts_like_a_duplicated_pair():
    chosen, rejected = torch.tensor([1.0, -1.0]), torch.tensor([0.0, 0.0])
    weighted = bradley_terry_loss(chosen, rejected, weights=torch.tensor([2.0, 1.0]))
    duplicated = bradley_terry_loss(torch.tensor([1.0, 1.0, -1.0]), torch.zeros(3))
    assert weighted.item() == pytest.approx(duplicated.item(), rel=1e-6)


def test_plackett_luce_three_items_by_hand():
    r = [0.3, 1.2, -0.5]
    # ranking 1 ≻ 0 ≻ 2: stage 0 picks item 1 from {0,1,2}, stage 1 picks 0 from {0,2}
    expected = -(r[1] - math.log(sum(math.exp(x) for x in r))) - (r[0] - math.log(math.exp(r[0]) + math.exp(r[2])))
    loss = plackett_luce_loss(torch.tensor([r]), torch.tensor([[1, 0, 2]]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_plackett_luce_of_a_pair_is_bradley_terry():
    pl = plackett_luce_loss(torch.tensor([[0.4, 1.1]]), torch.tensor([[1, 0]]))
    assert pl.item() == pytest.approx(nll_win(1.1 - 0.4), rel=1e-6)


def test_plackett_luce_ties_share_a_stage_breslow():
    r = [0.3, 1.2, -0.5]
    # tiers [[0, 1], [2]]: both tied items are placed at stage 0 against the full set
    log_all = math.log(sum(math.exp(x) for x in r))
    expected = -(r[0] + r[1]) + 2 * log_all  # stage 1 (item 2 alone) costs log 1 = 0
    loss = plackett_luce_loss(torch.tensor([r]), torch.tensor([[0, 0, 1]]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_plackett_luce_padding_is_ignored():
    rewards = torch.tensor([[0.5, -0.2, 9.0], [0.1, 0.7, 0.3]])
    tiers = torch.tensor([[0, 1, -1], [2, 0, 1]])  # first ranking has 2 items, third is padding
    batched = plackett_luce_loss(rewards, tiers, reduction="none")
    alone = plackett_luce_loss(torch.tensor([[0.5, -0.2]]), torch.tensor([[0, 1]]), reduction="none")
    assert batched[0].item() == pytest.approx(alone[0].item(), rel=1e-6)
    assert torch.isfinite(batched).all()


def test_plackett_luce_centering_matches_bradley_terry_on_a_pair():
    rewards, tiers = torch.tensor([[2.0, 1.0]]), torch.tensor([[0, 1]])
    pl = plackett_luce_loss(rewards, tiers, center_coef=0.1)
    bt = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([1.0]), center_coef=0.1)
    assert pl.item() == pytest.approx(bt.item(), rel=1e-6)


def test_plackett_luce_ensemble_and_weights():
    rewards = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # (K=2, B=1, M=2)
    tiers = torch.tensor([[0, 1]])
    per_member = plackett_luce_loss(rewards, tiers, reduction="none")  # (2, 1)
    assert per_member.flatten().tolist() == pytest.approx([nll_win(1.0), nll_win(-1.0)], rel=1e-6)
    weighted = plackett_luce_loss(rewards, tiers, weights=torch.tensor([[3.0], [1.0]]))
    assert weighted.item() == pytest.approx((3 * nll_win(1.0) + nll_win(-1.0)) / 4, rel=1e-6)


def test_pairwise_accuracy_counts_equal_rewards_as_half():
    accuracy = pairwise_accuracy(torch.tensor([1.0, 0.0, 2.0, 5.0]), torch.tensor([0.0, 1.0, 2.0, 4.0]))
    assert accuracy.item() == pytest.approx((1 + 0 + 0.5 + 1) / 4)


def test_unknown_tie_handling_is_refused():
    with pytest.raises(ValueError, match="tie_handling"):
        bradley_terry_loss(torch.zeros(1), torch.zeros(1), tie_handling="average")
