"""algorithm.curvature_mask 'capo' (CAPO, arXiv 2510.00819): tokens whose predicted update
leaves the trust region of a last-layer curvature model leave the policy loss."""

import hashlib
import math

import pytest
import torch

from workers.engine import Callbacks, PromptRecord, TrainConfig, train
from workers.engine import update as update_module
from workers.engine.config import AlgorithmConfig, OptimConfig, config_field_help
from workers.engine.curvature_mask import (
    AdamState,
    adam_direction,
    capo_token_mask,
    curvature_terms,
    head_adam_state,
    keep_tokens,
    support,
)
from workers.engine.errors import ConfigError
from workers.engine.rollout import left_pad
from workers.engine.tiny import build_tiny_policy
from workers.engine.update import UpdateBatch, build_optimizer, capo_mask, policy_update

TINY = {"alphabet": "abc", "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}
COMPLETION_MASK = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 1, 0]])


def _terms(logits, action, advantage, hidden, lr, state=None, top_k=0):
    ids, pi, onehot = support(torch.tensor([logits]), torch.tensor([action]), top_k)
    return curvature_terms(torch.tensor([hidden]), ids, pi, onehot, torch.tensor([advantage]),
                           lr, state)


# --- the curvature model, by hand ----------------------------------------------------------

def test_two_tokens_at_even_odds():
    # pi = (1/2, 1/2), action 0, A = 1, h = 1: v = (1/2, -1/2), g = G = v, <g, G> = 1/2,
    # u = G h = v, v.u = 1/2, u'Fu = sum pi u^2 - (pi.u)^2 = 1/4 - 0, so (v.u)^2 - u'Fu = 0:
    # m_H = lr / 2 and m_F = lr^2 / 2 * 1/4.
    terms = _terms([0.0, 0.0], 0, 1.0, [1.0], lr=0.1)
    assert terms.objective_shift.item() == pytest.approx(0.05)
    assert terms.kl_shift.item() == pytest.approx(0.00125)


def test_three_tokens_with_a_hessian_term():
    # pi = (1/3, 1/3, 1/3), action 0, A = 2, h = 1: v = (2/3, -1/3, -1/3), g = G = 2v,
    # <g, G> = 4 * 6/9 = 8/3, u = 2v, v.u = 2 * 6/9 = 4/3, pi.u = 0,
    # u'Fu = (16/9 + 4/9 + 4/9) / 3 = 8/9, Hessian term = A * (16/9 - 8/9) = 16/9;
    # lr = 0.1: m_H = 0.1 * 8/3 + 0.005 * 16/9, m_F = 0.005 * 16/9.
    terms = _terms([0.0, 0.0, 0.0], 0, 2.0, [1.0], lr=0.1)
    assert terms.objective_shift.item() == pytest.approx(0.8 / 3 + 0.08 / 9)
    assert terms.kl_shift.item() == pytest.approx(0.08 / 9)


def test_the_hidden_state_scales_the_step_and_its_effect():
    # h = 2 doubles g, and u = G h doubles again: <g, G> x4, v.u x4, so m_F x16.
    one = _terms([0.0, 0.0], 0, 1.0, [1.0], lr=0.1)
    two = _terms([0.0, 0.0], 0, 1.0, [2.0], lr=0.1)
    assert two.objective_shift.item() == pytest.approx(4 * one.objective_shift.item())
    assert two.kl_shift.item() == pytest.approx(16 * one.kl_shift.item())


def test_a_zero_advantage_token_moves_nothing_without_momentum():
    terms = _terms([0.3, -0.2, 1.0], 1, 0.0, [0.5, -1.0], lr=0.1)
    assert terms.objective_shift.item() == 0.0 and terms.kl_shift.item() == 0.0


def test_adam_direction_by_hand():
    # g = 1, m = 0.5, s = 0.25 after one step (t = 1), betas (0.9, 0.999), eps 1e-8:
    # m' = 0.45 + 0.1 = 0.55, s' = 0.24975 + 0.001 = 0.25075, bias-corrected at t = 2:
    # 0.55 / 0.19 and 0.25075 / 0.001999.
    state = AdamState(torch.zeros(1), torch.zeros(1), step=1, beta1=0.9, beta2=0.999, eps=1e-8)
    got = adam_direction(torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([0.25]), state)
    want = (0.55 / 0.19) / (math.sqrt(0.25075 / 0.001999) + 1e-8)
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert adam_direction(torch.tensor([3.0]), None, None, None).item() == 3.0  # no state: g


def test_the_prediction_is_the_logit_change_of_the_real_adamw_step():
    """A head trained one step on one token, then asked about the next: lr * G h, the model's
    predicted change of the logits, is what torch's AdamW then does to them (the state's
    moments read with the loss's sign, the step and bias corrections one ahead)."""
    torch.manual_seed(0)
    head = torch.nn.Linear(4, 5, bias=False)
    opt = torch.optim.AdamW(head.parameters(), lr=0.05, weight_decay=0.0)
    h, action, advantage = torch.randn(4), 2, 1.5

    def step(h, action):
        opt.zero_grad()
        loss = -advantage * torch.log_softmax(head(h), dim=-1)[action]
        loss.backward()
        opt.step()
    step(torch.randn(4), 4)  # a first step: moments and a step count to read
    state = head_adam_state(opt, head.weight)
    assert state is not None and state.step == 1
    with torch.no_grad():
        before = head(h).clone()
        ids, pi, onehot = support(before[None], torch.tensor([action]), 0)
        v = onehot - pi
        g = advantage * v[0][:, None] * h[None, :]
        big_g = adam_direction(g, -state.exp_avg[ids[0]], state.exp_avg_sq[ids[0]], state)
        predicted = 0.05 * big_g @ h
    step(h, action)
    with torch.no_grad():
        assert torch.allclose(head(h) - before, predicted, atol=1e-6)


def test_the_mask_keeps_tokens_strictly_inside_both_bounds():
    terms = _terms([0.0, 0.0], 0, 1.0, [1.0], lr=0.1)  # m_H = 0.05, m_F = 0.00125
    assert keep_tokens(terms, kl_threshold=0.002, objective_threshold=0.06).item()
    assert not keep_tokens(terms, kl_threshold=0.001, objective_threshold=0.06).item()
    assert not keep_tokens(terms, kl_threshold=0.002, objective_threshold=0.05).item()
    # The three even tokens with A = -2 and lr = 5: <g, G> = 8/3, the Hessian term is
    # -2 * (16/9 - 8/9) = -16/9, so m_H = 5 * 8/3 - 12.5 * 16/9 = -80/9, m_F = 200/9.
    negative = _terms([0.0, 0.0, 0.0], 0, -2.0, [1.0], lr=5.0)
    assert negative.objective_shift.item() == pytest.approx(-80 / 9)
    assert negative.kl_shift.item() == pytest.approx(200 / 9)
    assert keep_tokens(negative, kl_threshold=23.0, objective_threshold=9.0).item()
    assert not keep_tokens(negative, kl_threshold=23.0, objective_threshold=8.8).item()  # |m_H|


def test_the_support_swaps_in_a_sampled_token_outside_the_top_k():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 1.0, 0.0]])
    ids, pi, onehot = support(logits, torch.tensor([1, 3]), 2)
    assert ids.tolist() == [[0, 1], [0, 3]]
    assert onehot.tolist() == [[0.0, 1.0], [0.0, 1.0]]
    assert torch.allclose(pi[1], torch.softmax(torch.tensor([3.0, 0.0]), dim=-1))
    full_ids, full_pi, _ = support(logits[:1], torch.tensor([1]), 0)  # 0: the whole vocabulary
    assert full_ids.tolist() == [[0, 1, 2, 3]]
    assert torch.allclose(full_pi, torch.softmax(logits[:1], dim=-1))


def test_the_token_mask_reads_only_the_masked_in_tokens():
    # row 0: W = 0 so pi is even, h = 1 or 10; row 1 is masked out whatever it holds
    weight = torch.zeros(2, 1)
    hidden = torch.tensor([[[1.0], [10.0]], [[1.0], [1.0]]])
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    keep = capo_token_mask(hidden, weight, torch.zeros(2, 2, dtype=torch.long),
                           torch.tensor([1.0, 1.0]), mask, lr=0.1, temperature=1.0, top_k=0,
                           kl_threshold=0.002, objective_threshold=0.06)
    # h = 10: m_H = 100 * 0.05, far outside; h = 1: the by-hand 0.05 and 0.00125, inside
    assert keep.tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_the_temperature_divides_the_hidden_state():
    weight = torch.zeros(2, 1)
    args = (torch.zeros(1, 1, dtype=torch.long), torch.tensor([1.0]), torch.ones(1, 1))
    # h = 2 at temperature 2 is h = 1 at temperature 1: m_H = 0.05 < 0.06
    keep = capo_token_mask(torch.tensor([[[2.0]]]), weight, *args, lr=0.1, temperature=2.0,
                           top_k=0, kl_threshold=0.002, objective_threshold=0.06)
    assert keep.item() == 1.0
    keep = capo_token_mask(torch.tensor([[[2.0]]]), weight, *args, lr=0.1, temperature=1.0,
                           top_k=0, kl_threshold=0.002, objective_threshold=0.06)
    assert keep.item() == 0.0


def test_no_adam_state_before_the_first_step_or_under_sgd():
    head = torch.nn.Linear(3, 4, bias=False)
    assert head_adam_state(torch.optim.AdamW(head.parameters()), head.weight) is None
    sgd = torch.optim.SGD(head.parameters(), lr=0.1)
    head(torch.ones(3)).sum().backward()
    sgd.step()
    assert head_adam_state(sgd, head.weight) is None


def test_the_master_weights_state_is_read_for_a_bfloat16_head():
    model, _ = build_tiny_policy(**TINY)
    model = model.to(torch.bfloat16)
    opt = build_optimizer(model, OptimConfig())
    model(input_ids=torch.tensor([[3, 6, 7]])).logits.float().sum().backward()
    opt.step()
    state = head_adam_state(opt, model.lm_head.weight)
    assert state is not None and state.exp_avg.dtype == torch.float32
    assert state.exp_avg.shape == model.lm_head.weight.shape


# --- in the update -------------------------------------------------------------------------

def _batch(tok, completion_mask=COMPLETION_MASK, truncated=None):
    ids, mask = left_pad([[3, 6, 6, 7, 8, 6], [3, 7, 6, 2, 2, 2], [6, 7, 7, 8, 6, 7],
                          [3, 7, 7, 2, 6, 2]], tok.pad_token_id, "cpu")
    mask[:, -3:] = COMPLETION_MASK
    return UpdateBatch(ids, mask, completion_mask.clone(), torch.tensor([1.0, -1.0, 0.5, 0.0]),
                       truncated=truncated)


def _adamw_run(extra, *, fast=False, steps=3, batch_of=_batch):
    """(sha256 of the weights, last metrics) after ``steps`` AdamW updates of a tiny policy on
    one batch at lr 1e-2 and temperature 0.7."""
    model, tok = build_tiny_policy(**TINY)
    ref = build_tiny_policy(**TINY, seed=1)[0] if extra.get("beta") else None
    opt = build_optimizer(model, OptimConfig())
    for _ in range(steps):
        metrics = policy_update(model, opt, batch_of(tok), algo=AlgorithmConfig(**extra),
                                optim=OptimConfig(), lr=1e-2, temperature=0.7, max_new_tokens=3,
                                micro_batch_size=2, ref_model=ref, fast=fast)
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(p.detach().numpy().tobytes())
    return digest.hexdigest(), metrics


# Recorded with the update as it was before curvature_mask existed (commit d8312d6, its
# workers/ run from a `git archive`), on this project's CPU build of torch with one thread as
# tests/engine/conftest.py sets it (other thread counts sum in other orders): the switch off
# must leave every bit of the step as it was.
BEFORE = {
    ("plain", False): ("7aab0cdba42d81e19aefe454af9f4a1875606796ddac896165ae41c908d7c01c",
                       3.4392545223236084, -0.3888888955116272),
    ("plain", True): ("702ab2fd3dfa0c5b744a9685da47ec944a11486cdb3c4b77a7aa3c14317f1ef2",
                      3.4392542839050293, -0.3888888955116272),
    ("mu2-kl", False): ("4e0a3df688e85247a182c23b7c6790e1c24cdd37de8de1ff7459140e5c53794e",
                        1.8161764740943909, -0.16328417137265205),
    ("mu2-kl", True): ("4ed079c69f2bb3add6e531404c7ec2dc490999e15b34f3f3bccc406e70d313f8",
                       1.8161764740943909, -0.16328414902091026),
}
EXTRAS = {"plain": {}, "mu2-kl": {"num_iterations": 2, "beta": 0.1,
                                   "loss_aggregation": "seq_mean_token_mean"}}


# Where they were recorded: another torch build, or another CPU's kernels (AVX2 where this is
# AVX-512), round differently, so the recorded bits are compared only where they can hold.
# A Xeon with AMX tiles (Sapphire Rapids class, AVX-512 too) gave other digests for all four,
# the same at 4072f15 as with the change after it, so such a CPU is left out too.
RECORDED_ON = ("2.13.0+cpu", "AVX512")


def _cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(line.startswith("flags") and " amx_tile" in line for line in cpuinfo)
    except OSError:
        return False


@pytest.mark.skipif((torch.__version__, torch.backends.cpu.get_cpu_capability()) != RECORDED_ON
                    or _cpu_has_amx(),
                    reason=f"the digests were recorded on torch {RECORDED_ON[0]} with {RECORDED_ON[1]} kernels, "
                           "on a CPU without AMX")
@pytest.mark.parametrize("name, fast", list(BEFORE), ids=[f"{n}-{'fast' if f else 'plain'}" for n, f in BEFORE])
def test_with_the_switch_off_the_update_is_bit_for_bit_what_it_was(name, fast, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the curvature model ran with the switch off")
    monkeypatch.setattr(update_module, "capo_token_mask", refuse)
    digest, metrics = _adamw_run({**EXTRAS[name], "curvature_mask": "none"}, fast=fast)
    want_digest, want_grad_norm, want_loss = BEFORE[(name, fast)]
    assert (digest, metrics["grad_norm"], metrics["loss"]) == (want_digest, want_grad_norm, want_loss)
    assert "loss/curvature_masked_fraction" not in metrics


NOTHING_MASKED = {"curvature_kl_threshold": 1e30, "curvature_objective_threshold": 1e30}


@pytest.mark.parametrize("name", EXTRAS)
def test_capo_that_masks_nothing_is_the_plain_update(name):
    plain_digest, plain = _adamw_run(EXTRAS[name])
    digest, metrics = _adamw_run({**EXTRAS[name], "curvature_mask": "capo", **NOTHING_MASKED})
    assert digest == plain_digest
    assert metrics.pop("loss/curvature_masked_fraction") == 0.0
    assert metrics == plain


def _sgd_step(batch, algo, *, seed_state=False):
    """(metrics, each weight's change) of one update with AdamW (lr 1e-2), from a fresh tiny
    policy; ``seed_state``: after one plain step, so the head has Adam moments."""
    model, tok = build_tiny_policy(**TINY)
    opt = build_optimizer(model, OptimConfig())
    if seed_state:
        policy_update(model, opt, _batch(tok), algo=AlgorithmConfig(), optim=OptimConfig(),
                      lr=1e-2, temperature=0.7, max_new_tokens=3, micro_batch_size=2)
    before = [p.detach().clone() for p in model.parameters()]
    metrics = policy_update(model, opt, batch, algo=algo, optim=OptimConfig(), lr=1e-2,
                            temperature=0.7, max_new_tokens=3, micro_batch_size=2)
    return metrics, [p.detach() - b for p, b in zip(model.parameters(), before)], model, opt


def _keep_mask(algo, *, seed_state):
    """CAPO's keep-mask for the batch, as the update would see it."""
    model, tok = build_tiny_policy(**TINY)
    opt = build_optimizer(model, OptimConfig())
    if seed_state:
        policy_update(model, opt, _batch(tok), algo=AlgorithmConfig(), optim=OptimConfig(),
                      lr=1e-2, temperature=0.7, max_new_tokens=3, micro_batch_size=2)
    batch = _batch(tok)
    keep, fraction = capo_mask(model, opt, batch, batch.completion_mask.float(), algo, lr=1e-2,
                               temperature=0.7, micro_batch_size=2)
    return keep, fraction


@pytest.mark.parametrize("seed_state", [False, True], ids=["first-step", "with-moments"])
def test_the_masked_update_is_the_update_with_rejected_tokens_zeroed_by_hand(seed_state):
    # thresholds between the tokens' own m_F: some are kept, some rejected
    loose = AlgorithmConfig(curvature_mask="capo", curvature_objective_threshold=1e30,
                            curvature_kl_threshold=1e30)
    model, tok = build_tiny_policy(**TINY)
    opt = build_optimizer(model, OptimConfig())
    if seed_state:
        policy_update(model, opt, _batch(tok), algo=AlgorithmConfig(), optim=OptimConfig(),
                      lr=1e-2, temperature=0.7, max_new_tokens=3, micro_batch_size=2)
    batch = _batch(tok)
    hidden = model.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         position_ids=update_module.position_ids_from_mask(batch.attention_mask)
                         ).last_hidden_state[:, -4:-1].detach()
    where = batch.completion_mask.bool() & (batch.advantages != 0)[:, None]
    ids, pi, onehot = support(hidden[where] / 0.7 @ model.lm_head.weight.detach().T,
                              batch.input_ids[:, -3:][where], 50)
    terms = curvature_terms(hidden[where] / 0.7, ids, pi, onehot,
                            batch.advantages[torch.nonzero(where)[:, 0]], 1e-2,
                            head_adam_state(opt, model.lm_head.weight))
    kl = terms.kl_shift.sort().values
    threshold = float((kl[len(kl) // 2 - 1] + kl[len(kl) // 2]) / 2)
    algo = AlgorithmConfig(curvature_mask="capo", curvature_kl_threshold=threshold,
                           curvature_objective_threshold=1e30)
    keep, fraction = _keep_mask(algo, seed_state=seed_state)
    assert 0 < fraction < 1 and keep.sum() < COMPLETION_MASK.sum()
    assert _keep_mask(loose, seed_state=seed_state)[1] == 0.0
    masked, masked_steps, *_ = _sgd_step(_batch(tok), algo, seed_state=seed_state)
    by_hand, by_hand_steps, *_ = _sgd_step(_batch(tok, completion_mask=keep.long()),
                                           AlgorithmConfig(), seed_state=seed_state)
    assert masked.pop("loss/curvature_masked_fraction") == pytest.approx(fraction)
    assert masked.keys() == by_hand.keys()
    for key in masked:
        assert masked[key] == pytest.approx(by_hand[key], rel=1e-5, abs=1e-7), key
    for x, y in zip(masked_steps, by_hand_steps):
        assert torch.allclose(x, y, rtol=1e-5, atol=1e-7)


def test_a_step_whose_every_token_is_rejected_trains_nothing():
    _, tok = build_tiny_policy(**TINY)
    algo = AlgorithmConfig(curvature_mask="capo", curvature_kl_threshold=1e-30,
                           curvature_objective_threshold=1e-30)
    batch = _batch(tok)
    batch.advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])  # every row moves the head
    metrics, steps, _, opt = _sgd_step(batch, algo)
    assert all(bool((s == 0).all()) for s in steps)
    assert not opt.state  # no optimiser step: no moments
    assert metrics["loss/curvature_masked_fraction"] == 1.0
    assert metrics["loss"] == 0.0 and metrics["grad_norm"] == 0.0


def test_both_masks_keep_their_own_fractions():
    _, tok = build_tiny_policy(**TINY)
    truncated = torch.tensor([True, False, False, False])  # row 0: 3 of the 9 tokens
    algo = AlgorithmConfig(curvature_mask="capo", mask_truncated_completions=True,
                           **NOTHING_MASKED)
    metrics, *_ = _sgd_step(_batch(tok, truncated=truncated), algo)
    assert metrics["loss/masked_token_fraction"] == pytest.approx(3 / 9)
    assert metrics["loss/curvature_masked_fraction"] == 0.0


def test_rows_left_without_a_token_get_no_policy_forward(monkeypatch):
    model, tok = build_tiny_policy(**TINY)
    batch = _batch(tok)
    seen = []
    original = update_module.capo_token_mask

    def keep_only_row_two(hidden, weight, actions, advantages, mask, **kwargs):
        keep = original(hidden, weight, actions, advantages, mask, **kwargs)
        return keep * (advantages == 0.5).to(keep.dtype)[:, None]
    monkeypatch.setattr(update_module, "capo_token_mask", keep_only_row_two)
    plain = update_module._logprobs_fn

    def counting(model_, fast, compile_head=False):
        fn = plain(model_, fast, compile_head)

        def wrapped(m, ids, *args, **kwargs):
            seen.append(ids.shape[0])
            return fn(m, ids, *args, **kwargs)
        return wrapped
    monkeypatch.setattr(update_module, "_logprobs_fn", counting)
    algo = AlgorithmConfig(curvature_mask="capo", **NOTHING_MASKED)
    opt = build_optimizer(model, OptimConfig())
    metrics = policy_update(model, opt, batch, algo=algo, optim=OptimConfig(), lr=1e-2,
                            temperature=0.7, max_new_tokens=3, micro_batch_size=4)
    assert seen == [1]  # row 2 alone (row 3's advantage is 0, and it is masked out anyway)
    assert metrics["loss/curvature_masked_fraction"] == pytest.approx(6 / 9)


def test_a_bfloat16_policy_is_masked_from_its_master_weights_state():
    """A bfloat16 head: logits in its precision, the maths in float32 with the float32 master
    copy's moments; loose thresholds keep every token, tight ones none, and the kept step
    trains as the plain one does."""
    _, tok = build_tiny_policy(**TINY)

    def run(extra):
        model = build_tiny_policy(**TINY)[0].to(torch.bfloat16)
        opt = build_optimizer(model, OptimConfig())
        out = [policy_update(model, opt, _batch(tok), algo=AlgorithmConfig(**extra),
                             optim=OptimConfig(), lr=1e-2, temperature=0.7, max_new_tokens=3,
                             micro_batch_size=2) for _ in range(2)]
        return out[-1], [p.detach().clone() for p in model.parameters()]
    plain, plain_weights = run({})
    loose, loose_weights = run({"curvature_mask": "capo", **NOTHING_MASKED})
    assert loose.pop("loss/curvature_masked_fraction") == 0.0 and loose == plain
    assert all(torch.equal(a, b) for a, b in zip(plain_weights, loose_weights))
    tight, _ = run({"curvature_mask": "capo", "curvature_kl_threshold": 1e-30,
                    "curvature_objective_threshold": 1e-30})
    # zero-advantage row 3 (2 tokens) moves nothing on the first step; everything else goes
    assert tight["loss/curvature_masked_fraction"] >= 7 / 9


def test_a_policy_without_a_plain_lm_head_is_refused():
    model, tok = build_tiny_policy(**TINY)
    model.lm_head = torch.nn.Linear(32, model.lm_head.out_features, bias=True)
    with pytest.raises(ValueError, match="lm_head"):
        policy_update(model, build_optimizer(model, OptimConfig()), _batch(tok),
                      algo=AlgorithmConfig(curvature_mask="capo"), optim=OptimConfig(),
                      lr=1e-2, temperature=0.7, max_new_tokens=3, micro_batch_size=2)


# --- config --------------------------------------------------------------------------------

def test_the_switch_is_off_by_default_and_stored_configs_do_not_change():
    algo = AlgorithmConfig()
    assert (algo.curvature_mask, algo.curvature_kl_threshold, algo.curvature_objective_threshold,
            algo.curvature_top_k) == ("none", 1e-4, 0.01, 50)
    stored = TrainConfig.from_dict({"policy": {"source": "tiny"}}).to_dict()["algorithm"]
    assert not any(key.startswith("curvature") for key in stored)
    config = TrainConfig.from_dict({"algorithm": {"curvature_mask": "capo",
                                                  "curvature_kl_threshold": 1e-3,
                                                  "curvature_top_k": 0},
                                    "policy": {"source": "tiny"}})
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["algorithm"]["curvature_mask"] == "capo"
    assert "2510.00819" in config_field_help()["algorithm.curvature_mask"]


@pytest.mark.parametrize("key, value, words", [
    ("curvature_mask", "kfac", "is not one of 'none', 'capo'"),
    ("curvature_kl_threshold", 0, "must be a number > 0"),
    ("curvature_kl_threshold", -1e-4, "must be a number > 0"),
    ("curvature_objective_threshold", 0.0, "must be a number > 0"),
    ("curvature_top_k", -1, "must be >= 0"),
    ("curvature_top_k", 10**6, "at most 1,024"),
])
def test_bad_values_are_refused_naming_the_field(key, value, words):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"algorithm": {key: value}, "policy": {"source": "tiny"}})
    assert info.value.field == f"algorithm.{key}"
    assert words in info.value.message


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_threshold_must_be_finite(value):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"algorithm": {"curvature_objective_threshold": float(value)},
                               "policy": {"source": "tiny"}})
    assert info.value.field == "algorithm.curvature_objective_threshold"


# --- through the trainer -------------------------------------------------------------------

class Recorder(Callbacks):
    def __init__(self):
        super().__init__()
        self.metrics = {}

    def on_metrics(self, step, metrics):
        self.metrics[step] = metrics


def test_a_run_with_capo_logs_its_fraction_every_step(tiny_cfg, tmp_path):
    config = TrainConfig.from_dict(tiny_cfg(
        rollout={"num_generations": 4, "prompts_per_step": 2, "max_new_tokens": 3},
        algorithm={"curvature_mask": "capo"},
        train={"total_steps": 2, "checkpoint_every": 100, "device": "cpu", "micro_batch_size": 4}))
    recorder = Recorder()
    train(config, [PromptRecord(p, id=f"p{i}") for i, p in enumerate(["a", "b", "ab"])],
          recorder, output_dir=tmp_path)
    fractions = [m["loss/curvature_masked_fraction"] for m in recorder.metrics.values()]
    assert len(fractions) == 2 and all(0.0 <= f <= 1.0 for f in fractions)
    assert all("loss/masked_token_fraction" not in m for m in recorder.metrics.values())
