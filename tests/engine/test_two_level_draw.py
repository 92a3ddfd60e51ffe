"""sample_categorical's two-level draw for wide rows (vocabularies over 4 blocks of 512): the
same index as one float64 scan of the whole row at the same uniform, never a zero entry."""

import pytest
import torch

from workers.engine import rollout
from workers.engine.rollout import DRAW_BLOCK, sample_categorical


def full_scan(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The one-level inversion: first index whose float64 cumulative sum exceeds u * total,
    kept on the last entry with positive mass."""
    cdf = probs.cumsum(dim=-1, dtype=torch.float64)
    index = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
    return torch.minimum(index, cdf.argmax(dim=-1, keepdim=True)).squeeze(1)


def with_uniforms(monkeypatch, u: torch.Tensor) -> None:
    """Make the draw's torch.rand return ``u`` (N, 1) float64."""
    monkeypatch.setattr(rollout.torch, "rand", lambda shape, **kw: u.to(kw.get("device")))


@pytest.mark.parametrize("vocab", [4 * DRAW_BLOCK + 1, 5000, 49152])
def test_wide_rows_draw_the_index_one_full_scan_draws(monkeypatch, vocab):
    gen = torch.Generator().manual_seed(vocab)
    logits = torch.randn(300, vocab, generator=gen) * 4
    logits[:100, vocab // 3:] = float("-inf")  # a third of the rows end in zero blocks
    probs = torch.softmax(logits, dim=-1)
    u = torch.rand(300, 1, generator=gen, dtype=torch.float64)
    u[0], u[1] = 0.0, 1.0 - 2 ** -53  # both ends of the range
    with_uniforms(monkeypatch, u)
    drawn = sample_categorical(probs, None)
    assert torch.equal(drawn, full_scan(probs, u))
    assert bool((probs.gather(1, drawn[:, None]) > 0).all())


def test_a_draw_at_the_top_of_the_range_stays_on_a_possible_token(monkeypatch):
    vocab = 3000
    probs = torch.zeros(3, vocab)
    probs[0, 7] = 1.0  # one possible token, in the first block
    probs[1, [10, 2600]] = 0.5  # the last positive entry inside the last (short) block
    probs[2, [600, 1100]] = 0.5  # the rest of the row, blocks included, is zero
    with_uniforms(monkeypatch, torch.ones(3, 1, dtype=torch.float64))
    assert sample_categorical(probs, None).tolist() == [7, 2600, 1100]


def test_tiny_entries_after_a_large_mass_are_drawn_and_their_zero_neighbours_are_not(
        monkeypatch):
    # Block 0 holds almost all the mass; block 1 holds 1e-17 at every other entry (zeros
    # between), each too small to change 1.0 when added to it, though the block's sum is not.
    # Draws at the top of the range land in block 1, on its positive entries only.
    vocab = 4 * DRAW_BLOCK + 100
    probs = torch.zeros(64, vocab, dtype=torch.float64)
    probs[:, 3] = 1.0
    probs[:, DRAW_BLOCK:2 * DRAW_BLOCK:2] = 1e-17
    u = 1.0 - torch.linspace(0, 2.5e-15, 64, dtype=torch.float64)[:, None]
    with_uniforms(monkeypatch, u)
    drawn = sample_categorical(probs, None)
    assert bool((probs.gather(1, drawn[:, None]) > 0).all())
    in_block_1 = (drawn >= DRAW_BLOCK) & (drawn < 2 * DRAW_BLOCK)
    assert bool(in_block_1[0]) and int(in_block_1.sum()) > 1


def test_wide_rows_follow_the_probabilities_and_the_generator_fixes_them():
    vocab = 6000
    probs = torch.zeros(20000, vocab)
    chosen = torch.tensor([5, 511, 512, 2047, 4500, 5999])
    weights = torch.tensor([0.1, 0.2, 0.05, 0.3, 0.15, 0.2])
    probs[:, chosen] = weights * 7  # unnormalised
    drawn = sample_categorical(probs, torch.Generator().manual_seed(0))
    assert set(drawn.unique().tolist()) <= set(chosen.tolist())
    freq = torch.stack([(drawn == c).double().mean() for c in chosen])
    assert torch.allclose(freq, weights.double(), atol=0.015)  # 20k draws: s.e. below 0.004
    again = sample_categorical(probs, torch.Generator().manual_seed(0))
    assert torch.equal(drawn, again)


def test_the_draw_takes_as_many_random_numbers_as_a_narrow_row_does():
    # One float64 uniform per row whatever the width: a decoder's later draws, which share
    # the generator, do not depend on the vocabulary's size.
    after = []
    for vocab in (100, 10000):
        gen = torch.Generator().manual_seed(3)
        sample_categorical(torch.ones(8, vocab), gen)
        after.append(torch.rand(4, generator=gen))
    assert torch.equal(after[0], after[1])


def test_log_probs_at_temperature_one_are_those_of_the_widened_logits():
    gen = torch.Generator().manual_seed(4)
    logits = (torch.randn(6, 3000, generator=gen) * 3).bfloat16()
    params = rollout.SamplingParams(max_new_tokens=1)
    token, logp = rollout.draw_tokens(logits, params, torch.Generator().manual_seed(5))
    expected = torch.log_softmax(logits.float(), dim=-1).gather(1, token[:, None]).squeeze(1)
    assert logp.dtype == torch.float32
    torch.testing.assert_close(logp, expected, rtol=0, atol=1e-5)
