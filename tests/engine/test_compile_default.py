"""train.compile_decoder: unset, it is on for a CUDA device with Triton and off on a CPU;
train.compile_head stays off unless asked for. A compilation that fails logs a warning and the
same function runs eagerly."""

import logging

import pytest
import torch

from workers.engine import compiling
from workers.engine.compiling import compile_wanted, guarded_compile
from workers.engine.config import ConfigError, TrainConfig
from workers.engine.data import PromptRecord
from workers.engine.rollout import SamplingParams, encode_prompts
from workers.engine.static_decoder import StaticCacheSampler
from workers.engine.tiny import build_tiny_policy
from workers.engine.trainer import _open_session


@pytest.fixture(autouse=True)
def _no_failures_remembered(monkeypatch):
    """Each test starts with no compilation remembered as failed, and leaves none behind for
    the other test files' compiled paths."""
    monkeypatch.setattr(compiling, "_FAILED", set())


@pytest.mark.parametrize(("setting", "device", "triton", "wanted"), [
    (None, "cpu", True, False),
    (None, "cuda", True, True),
    (None, "cuda:1", True, True),
    (None, "cuda", False, False),  # no Triton: inductor has no GPU backend
    (True, "cpu", False, True),  # a setting given wins
    (False, "cuda", True, False),
])
def test_unset_compiles_on_a_cuda_device_with_triton_only(monkeypatch, setting, device, triton,
                                                         wanted):
    monkeypatch.setattr(compiling, "triton_available", lambda: triton)
    assert compile_wanted(setting, device) is wanted


def test_compile_decoder_is_unset_by_default_and_takes_true_false_or_null():
    assert TrainConfig().train.compile_decoder is None
    assert TrainConfig().train.compile_head is False
    for value in (True, False, None):
        config = TrainConfig.from_dict({"train": {"compile_decoder": value}})
        assert config.train.compile_decoder is value
        assert TrainConfig.from_dict(config.to_dict()) == config
    for field, bad in (("compile_decoder", "yes"), ("compile_decoder", 1), ("compile_head", None)):
        with pytest.raises(ConfigError) as raised:
            TrainConfig.from_dict({"train": {field: bad}})
        assert raised.value.field == f"train.{field}"
        assert "true or false" in raised.value.message


def _failing_compiler(calls):
    def fake_compile(fn, **options):
        def compiled(*args, **kwargs):
            calls.append(options)
            raise RuntimeError("InductorError: no working C compiler found\nmore detail")
        return compiled
    return fake_compile


def test_a_failed_compilation_warns_once_and_runs_the_function_eagerly(monkeypatch, caplog):
    calls = []
    monkeypatch.setattr(torch, "compile", _failing_compiler(calls))
    double = guarded_compile(lambda x: 2 * x, what="the doubler", dynamic=True)
    with caplog.at_level(logging.WARNING, logger="workers.engine.compiling"):
        assert [double(1), double(2), double(3)] == [2, 4, 6]
    assert calls == [{"dynamic": True}]  # tried once, with the options given
    assert double.compile_failed()
    [record] = caplog.records
    assert record.getMessage() == ("torch.compile of the doubler failed (RuntimeError: "
                                   "InductorError: no working C compiler found); running it eagerly")


def test_an_error_of_the_function_itself_still_raises(monkeypatch):
    monkeypatch.setattr(torch, "compile", _failing_compiler([]))

    def broken(x):
        raise ValueError(f"bad input {x}")
    with pytest.raises(ValueError, match="bad input 7"):
        guarded_compile(broken, what="broken")(7)


def test_an_error_the_eager_function_shares_leaves_the_compilation_in_use(monkeypatch, caplog):
    """Out of memory, say: the compiled and the eager call both fail, so the compiler is not
    at fault; the next call runs compiled again, and nothing says the compilation failed."""
    tried = []

    def fake_compile(fn, **options):
        def compiled(x):
            tried.append(x)
            return fn(x)
        return compiled
    monkeypatch.setattr(torch, "compile", fake_compile)

    def needs_memory(x):
        if x > 10:
            raise MemoryError(f"{x} is too big")
        return x
    guarded = guarded_compile(needs_memory, what="the step")
    with caplog.at_level(logging.WARNING, logger="workers.engine.compiling"):
        with pytest.raises(MemoryError, match="11 is too big"):
            guarded(11)
        assert guarded(3) == 3
    assert tried == [11, 3] and not guarded.compile_failed() and not caplog.records
    assert "the step" not in compiling._FAILED


def test_a_working_compilation_is_used_and_not_reported(monkeypatch, caplog):
    used = []

    def fake_compile(fn, **options):
        def compiled(*args, **kwargs):
            used.append(args)
            return fn(*args, **kwargs)
        return compiled
    monkeypatch.setattr(torch, "compile", fake_compile)
    square = guarded_compile(lambda x: x * x, what="the square")
    with caplog.at_level(logging.WARNING, logger="workers.engine.compiling"):
        assert square(3) == 9
    assert used == [(3,)] and not square.compile_failed() and not caplog.records


def test_a_decoder_whose_compilation_fails_decodes_as_the_eager_one(monkeypatch, caplog):
    model, tok = build_tiny_policy(alphabet="ab ", hidden_size=32, num_layers=2, num_heads=2,
                                   intermediate_size=64, seed=3)
    model.eval()
    prompts = encode_prompts(tok, ["ab", "a bb ab", "b"], use_chat_template=False)
    params = SamplingParams(max_new_tokens=6, temperature=1.0)

    def decode(sampler):
        return sampler(model, prompts, params, pad_id=tok.pad_token_id,
                       eos_ids=[tok.eos_token_id], generator=torch.Generator().manual_seed(5))
    eager = decode(StaticCacheSampler(fixed_width=True))
    calls = []
    monkeypatch.setattr(torch, "compile", _failing_compiler(calls))
    with caplog.at_level(logging.WARNING, logger="workers.engine.compiling"):
        fallen_back = decode(StaticCacheSampler(fixed_width=True, compile=True))
    assert len(calls) == 1 and "the decoder's step" in caplog.records[0].getMessage()
    assert torch.equal(fallen_back.completion_ids, eager.completion_ids)
    assert torch.equal(fallen_back.completion_mask, eager.completion_mask)
    torch.testing.assert_close(fallen_back.sampling_logprobs, eager.sampling_logprobs)


def test_a_cpu_run_with_the_settings_unset_compiles_nothing(tiny_cfg, tmp_path):
    records = [PromptRecord("ab", id=0), PromptRecord("ba", id=1)]
    session, _ = _open_session(TrainConfig.from_dict(tiny_cfg()), records, tmp_path, None)
    assert session.sampler.compile is False
    asked = TrainConfig.from_dict(tiny_cfg(train={"compile_decoder": True}))
    session, _ = _open_session(asked, records, tmp_path / "asked", None)
    assert session.sampler.compile is True


def test_a_head_whose_compilation_fails_gives_the_eager_head_s_values(monkeypatch, caplog):
    from workers.engine import chunked_logprobs  # noqa: PLC0415
    from workers.engine.chunked_logprobs import selected_logprobs  # noqa: PLC0415

    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(10, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(12, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 12, (10,), generator=gen)

    def run(compiled):
        logprob, entropy = selected_logprobs(hidden, weight, targets, 0.7, chunk=4, compiled=compiled)
        grads = torch.autograd.grad(logprob.sum(), (hidden, weight))
        return logprob.detach(), entropy, grads
    plain = run(False)
    calls = []
    monkeypatch.setattr(chunked_logprobs, "_COMPILED", {})  # compiled anew under the fake compiler
    monkeypatch.setattr(torch, "compile", _failing_compiler(calls))
    with caplog.at_level(logging.WARNING, logger="workers.engine.compiling"):
        fallen_back = run(True)
    assert len(calls) == 2  # the forward's and the backward's functions, each tried once
    assert sorted(r.getMessage().split(" failed")[0] for r in caplog.records) == [
        "torch.compile of the LM head's grad", "torch.compile of the LM head's stats"]
    torch.testing.assert_close(fallen_back[0], plain[0])
    torch.testing.assert_close(fallen_back[1], plain[1])
    for a, b in zip(fallen_back[2], plain[2], strict=True):
        torch.testing.assert_close(a, b)


def test_what_failed_once_is_not_compiled_again_in_the_process(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", _failing_compiler(calls))
    assert guarded_compile(lambda x: x + 1, what="the step")(1) == 2
    again = guarded_compile(lambda x: x + 2, what="the step")  # e.g. the next run's decoder
    assert again(1) == 3 and again.compile_failed()
    assert guarded_compile(lambda x: x + 3, what="the head")(1) == 4  # another part is tried
    assert len(calls) == 2


def test_triton_without_a_c_compiler_is_not_counted_as_available(monkeypatch):
    import sys  # noqa: PLC0415
    import types  # noqa: PLC0415

    monkeypatch.setitem(sys.modules, "triton", types.ModuleType("triton"))
    monkeypatch.setattr(compiling, "c_compiler", lambda: None)
    assert compiling.triton_available.__wrapped__() is False
    monkeypatch.setattr(compiling, "c_compiler", lambda: "/usr/bin/gcc")
    assert compiling.triton_available.__wrapped__() is True
    monkeypatch.setitem(sys.modules, "triton", None)  # not installed: the import fails
    assert compiling.triton_available.__wrapped__() is False


def test_the_c_compiler_is_gcc_else_clang_on_the_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert compiling.c_compiler() is None
    for name in ("clang", "gcc"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
        assert compiling.c_compiler() == str(tmp_path / name)  # gcc first, as Triton
