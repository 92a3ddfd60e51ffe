"""algorithm.mask_truncated_completions with a KL term (beta > 0): the reference model, like
the policy, gives no forward pass to the truncated rows the loss leaves out, and the update is
the one it was when the reference scored every row."""

import pytest
import torch
from safetensors.torch import load_file

from workers.engine import PromptRecord, TrainConfig, train
from workers.engine import update as update_module
from workers.engine.config import AlgorithmConfig, OptimConfig
from workers.engine.rollout import left_pad
from workers.engine.tiny import build_tiny_policy
from workers.engine.update import UpdateBatch, policy_update, reference_logprobs

from .conftest import tiny_config_dict

TINY = {"alphabet": "abc", "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}
TRUNCATED = torch.tensor([True, False, False, True])  # rows 0 and 3 hit max_new_tokens
COMPLETION_MASK = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 1, 0]])


def _batch(tok, truncated=TRUNCATED):
    ids, mask = left_pad([[3, 6, 6, 7, 8, 6], [3, 7, 6, 2, 2, 2], [6, 7, 7, 8, 6, 7],
                          [3, 7, 7, 2, 6, 2]], tok.pad_token_id, "cpu")
    ids[1, :2] = tok.pad_token_id
    mask[1, :2] = 0
    mask[:, -3:] = COMPLETION_MASK
    return UpdateBatch(ids, mask, COMPLETION_MASK.clone(), torch.tensor([1.0, -1.0, 0.5, -0.5]),
                       truncated=truncated)


def _count_rows(model) -> list[int]:
    """The batch size of every forward through ``model`` (every path, Hugging Face's forward,
    the chunked head's and the packed one, starts at the token embedding)."""
    seen: list[int] = []
    model.model.embed_tokens.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    return seen


def _all_rows_reference(monkeypatch):
    """Make policy_update's reference score every row, as it did before it skipped any."""
    original = update_module.reference_logprobs

    def every_row(*args, rows=None, **kwargs):
        return original(*args, **kwargs)
    monkeypatch.setattr(update_module, "reference_logprobs", every_row)


def _update(batch, algo, *, fast=False, micro_batch_size=2):
    """(metrics, updated parameters, rows each reference forward saw) of one AdamW update."""
    model, _ = build_tiny_policy(**TINY)
    ref, _ = build_tiny_policy(**TINY, seed=1)
    ref.eval().requires_grad_(False)
    ref_rows = _count_rows(ref)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    metrics = policy_update(model, optimizer, batch, algo=algo, optim=OptimConfig(), lr=1e-2,
                            temperature=1.0, max_new_tokens=3, micro_batch_size=micro_batch_size,
                            ref_model=ref, fast=fast)
    return metrics, [p.detach().clone() for p in model.parameters()], ref_rows


def _same(a, b, *, rel=1e-5, atol=1e-7):
    assert a[0].keys() == b[0].keys()
    for key in a[0]:
        assert a[0][key] == pytest.approx(b[0][key], rel=rel, abs=atol), key
    for x, y in zip(a[1], b[1]):
        assert torch.allclose(x, y, rtol=rel, atol=atol), (x - y).abs().max()


ALGOS = {
    "mu1-token_mean": {"beta": 0.1},
    "mu3-seq_mean_token_mean": {"beta": 0.2, "num_iterations": 3,
                                "loss_aggregation": "seq_mean_token_mean"},
    "mu2-sequence": {"beta": 0.1, "num_iterations": 2, "importance_level": "sequence"},
}


@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
@pytest.mark.parametrize("extra", ALGOS.values(), ids=ALGOS.keys())
def test_the_reference_skips_truncated_rows_and_the_update_is_unchanged(extra, fast, monkeypatch):
    _, tok = build_tiny_policy(**TINY)
    algo = AlgorithmConfig(mask_truncated_completions=True, **extra)
    skipping = _update(_batch(tok), algo, fast=fast)
    assert sum(skipping[2]) == 2  # rows 1 and 2 only; rows 0 and 3 are truncated
    assert skipping[0]["kl"] > 0  # the KL term is there
    with monkeypatch.context() as m:
        _all_rows_reference(m)
        every_row = _update(_batch(tok), algo, fast=fast)
    assert sum(every_row[2]) == 4  # the former work: the reference saw every row
    _same(skipping, every_row, rel=1e-4, atol=1e-6)  # other micro-batches: rounding differs


def test_micro_batches_of_one_give_the_reference_only_the_kept_rows():
    _, tok = build_tiny_policy(**TINY)
    _, _, ref_rows = _update(_batch(tok), AlgorithmConfig(mask_truncated_completions=True, beta=0.1),
                             micro_batch_size=1)
    assert ref_rows == [1, 1]


def test_with_the_knob_off_the_reference_still_scores_every_row():
    _, tok = build_tiny_policy(**TINY)
    _, _, ref_rows = _update(_batch(tok), AlgorithmConfig(beta=0.1), micro_batch_size=4)
    assert ref_rows == [4]


def test_an_all_truncated_batch_gives_the_reference_no_forward():
    _, tok = build_tiny_policy(**TINY)
    metrics, _, ref_rows = _update(_batch(tok, truncated=torch.ones(4, dtype=torch.bool)),
                                   AlgorithmConfig(mask_truncated_completions=True, beta=0.1))
    assert ref_rows == [] and metrics["kl"] == 0.0


@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
def test_reference_logprobs_of_selected_rows_match_the_full_pass(fast):
    ref, tok = build_tiny_policy(**TINY, seed=1)
    batch = _batch(tok)
    full = reference_logprobs(ref, batch, temperature=1.0, micro_batch_size=4, fast=fast)
    kept = ~TRUNCATED
    some = reference_logprobs(ref, batch, temperature=1.0, micro_batch_size=4, fast=fast,
                              rows=kept)
    assert some.shape == full.shape and some.dtype == full.dtype
    assert torch.allclose(some[kept], full[kept], atol=1e-6)
    assert torch.equal(some[TRUNCATED], torch.zeros_like(some[TRUNCATED]))  # never read


def test_a_training_run_is_unchanged_and_its_reference_sees_fewer_rows(tmp_path, monkeypatch):
    """Through train(): beta > 0, the knob on, completions short enough that some are
    truncated; the run's metrics and final weights equal those of a reference scoring every
    row."""
    config = TrainConfig.from_dict(tiny_config_dict(
        algorithm={"beta": 0.1, "mask_truncated_completions": True, "num_iterations": 2},
        rollout={"num_generations": 4, "prompts_per_step": 2, "max_new_tokens": 2},
        train={"total_steps": 2, "checkpoint_every": 100, "device": "cpu", "seed": 0,
               "micro_batch_size": 2}))
    prompts = [PromptRecord(p, id=f"p{i}") for i, p in enumerate(["a", "b", "ab", "ba"])]
    seen = {"skip": [], "all": []}
    original = update_module.reference_logprobs

    def run(name, score_every_row):
        def recording(ref_model, batch, *args, rows=None, **kwargs):
            selected = None if score_every_row else rows
            seen[name].append(len(batch) if selected is None else int(selected.sum()))
            return original(ref_model, batch, *args, rows=selected, **kwargs)
        monkeypatch.setattr(update_module, "reference_logprobs", recording)
        return train(config, prompts, output_dir=tmp_path / name)

    skipping, every_row = run("skip", False), run("all", True)
    assert [s for s, _ in skipping.history] == [1, 2]
    masked = [m["loss/masked_token_fraction"] for _, m in skipping.history]
    assert any(f > 0 for f in masked) and all(f < 1 for f in masked)  # some truncated, not all
    assert sum(seen["skip"]) < sum(seen["all"])
    for (_, a), (_, b) in zip(skipping.history, every_row.history):
        for key in a:
            if not key.startswith(("timing/", "throughput/")):  # wall-clock figures
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    weights = [load_file(r.final_checkpoint / "model.safetensors") for r in (skipping, every_row)]
    for key in weights[0]:
        assert torch.allclose(weights[0][key], weights[1][key], rtol=1e-4, atol=1e-6), key
