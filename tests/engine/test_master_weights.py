import io

import pytest
import torch

from workers.engine.config import OptimConfig
from workers.engine.master_weights import MasterWeightsAdamW
from workers.engine.update import build_optimizer


def _bf16_layer(seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    layer = torch.nn.Linear(64, 64)
    with torch.no_grad():
        layer.weight.normal_(0, 0.02)
    return layer.to(torch.bfloat16)


def _set_grads(params, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g).to(device=p.device, dtype=p.dtype)


def test_the_masters_take_exactly_the_float32_steps():
    layer = _bf16_layer()
    reference = [p.detach().float().clone().requires_grad_() for p in layer.parameters()]
    ours = MasterWeightsAdamW(layer.parameters(), lr=1e-6, weight_decay=0.01)
    theirs = torch.optim.AdamW(reference, lr=1e-6, weight_decay=0.01)
    for step in range(3):
        _set_grads(layer.parameters(), seed=step)
        for p, r in zip(layer.parameters(), reference):
            r.grad = p.grad.float()
        ours.step()
        theirs.step()
        ours.zero_grad()
    for m, r, p in zip(ours.master_params, reference, layer.parameters()):
        assert m.dtype == torch.float32
        assert torch.equal(m, r)
        assert torch.equal(p, r.to(torch.bfloat16))  # the weights are the rounded masters
        assert p.grad is None


def test_small_steps_accumulate_where_plain_bfloat16_rounds_them_away():
    """200 steps of lr 1e-5 in one direction: about 2e-3 per weight, many units of bfloat16's
    resolution at 0.02, yet each step alone is below half a unit."""
    kept, plain = _bf16_layer(), _bf16_layer()
    before = kept.weight.detach().clone()
    optimizers = (MasterWeightsAdamW(kept.parameters(), lr=1e-5),
                  torch.optim.AdamW(plain.parameters(), lr=1e-5))
    for _ in range(200):
        for layer, optimizer in zip((kept, plain), optimizers):
            for p in layer.parameters():
                p.grad = torch.ones_like(p)
            optimizer.step()
    moved = (kept.weight != before).float().mean().item()
    moved_plain = (plain.weight != before).float().mean().item()
    assert moved > 0.95
    assert moved_plain < 0.2
    expected = before.float() - 200 * 1e-5
    torch.testing.assert_close(kept.weight.float(), expected, rtol=2**-8, atol=1e-7)  # rounding


def _roundtrip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # as checkpoint.load_training_state reads it


def test_a_reloaded_optimizer_carries_on_from_the_masters():
    layer = _bf16_layer()
    optimizer = MasterWeightsAdamW(layer.parameters(), lr=1e-3)
    _set_grads(layer.parameters(), seed=0)
    optimizer.step()
    saved = _roundtrip(optimizer.state_dict())
    assert len(saved["master_weights"]) == 2

    restored_layer = _bf16_layer(seed=1)  # other weights: the masters must win
    restored_layer.load_state_dict(layer.state_dict())
    restored = MasterWeightsAdamW(restored_layer.parameters(), lr=1e-3)
    restored.load_state_dict(saved)
    for layer_, optimizer_ in ((layer, optimizer), (restored_layer, restored)):
        _set_grads(layer_.parameters(), seed=1)
        optimizer_.step()
    for a, b in zip(optimizer.master_params, restored.master_params):
        assert torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(layer.parameters(), restored_layer.parameters()))


def test_a_plain_adamw_state_starts_the_masters_from_the_weights():
    """A checkpoint written by a plain AdamW (before master weights) still resumes."""
    layer = _bf16_layer()
    plain = torch.optim.AdamW(layer.parameters(), lr=1e-3)
    _set_grads(layer.parameters(), seed=0)
    plain.step()
    optimizer = MasterWeightsAdamW(layer.parameters(), lr=1e-3)
    with torch.no_grad():
        for m in optimizer.master_params:
            m.add_(1.0)  # stale masters must be replaced
    optimizer.load_state_dict(_roundtrip(plain.state_dict()))
    for m, p in zip(optimizer.master_params, layer.parameters()):
        assert torch.equal(m, p.float())
    state = optimizer.state[optimizer.master_params[0]]
    assert state["exp_avg"].dtype == torch.float32 and float(state["step"]) == 1


def test_master_weights_of_another_model_are_refused():
    layer = _bf16_layer()
    saved = MasterWeightsAdamW(layer.parameters(), lr=1e-3).state_dict()
    other = torch.nn.Linear(64, 32).to(torch.bfloat16)
    with pytest.raises(ValueError, match="master weights do not match"):
        MasterWeightsAdamW(other.parameters(), lr=1e-3).load_state_dict(saved)


@pytest.mark.parametrize("wide", [torch.float32, torch.float64])
def test_wider_parameters_are_stepped_as_themselves(wide):
    layer = torch.nn.Linear(4, 4).to(wide)
    layer.bias.data = layer.bias.data.to(torch.bfloat16)
    optimizer = MasterWeightsAdamW(layer.parameters(), lr=1e-2)
    assert optimizer.low_precision_params == [layer.bias]
    assert optimizer.param_groups[0]["params"][0] is layer.weight
    before = layer.weight.detach().clone()
    _set_grads(layer.parameters(), seed=0)
    optimizer.step()
    assert not torch.equal(layer.weight, before)


def test_step_hooks_run_once_per_step_and_closures_are_refused():
    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])  # torch wraps AdamW.step now
    layer = _bf16_layer()
    optimizer = MasterWeightsAdamW(layer.parameters(), lr=1e-3)
    calls = []
    optimizer.register_step_pre_hook(lambda *_: calls.append("pre"))
    optimizer.register_step_post_hook(lambda *_: calls.append("post"))
    _set_grads(layer.parameters(), seed=0)
    optimizer.step()
    assert calls == ["pre", "post"]
    with pytest.raises(TypeError, match="no closure"):
        optimizer.step(lambda: 0.0)


@pytest.mark.parametrize("dtype, master_weights, expected", [
    (torch.float32, True, torch.optim.AdamW),
    (torch.bfloat16, True, MasterWeightsAdamW),
    (torch.bfloat16, False, torch.optim.AdamW),
])
def test_build_optimizer_keeps_masters_for_low_precision_policies(dtype, master_weights, expected):
    model = torch.nn.Linear(4, 4).to(dtype)
    optimizer = build_optimizer(model, OptimConfig(master_weights=master_weights))
    assert type(optimizer) is expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fused_master_weights_on_gpu_take_the_float32_steps():
    layer = _bf16_layer().cuda()
    reference = [p.detach().float().cpu().requires_grad_() for p in layer.parameters()]
    ours = build_optimizer(layer, OptimConfig(lr=1e-4), fast=True)
    assert type(ours) is MasterWeightsAdamW and ours.defaults["fused"]
    theirs = torch.optim.AdamW(reference, lr=1e-4, weight_decay=0.0)  # OptimConfig's default
    for step in range(3):
        _set_grads(layer.parameters(), seed=step)
        for p, r in zip(layer.parameters(), reference):
            r.grad = p.grad.float().cpu()
        ours.step()
        theirs.step()
    for m, r, p in zip(ours.master_params, reference, layer.parameters()):
        torch.testing.assert_close(m.cpu(), r, rtol=1e-6, atol=1e-9)
        assert torch.equal(p, m.to(torch.bfloat16))
