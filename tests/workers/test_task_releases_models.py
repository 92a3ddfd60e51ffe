"""Each run task frees the reward models and judges its run cached, whatever the run's outcome,
so the worker's next run starts with the GPU memory they held."""

from types import SimpleNamespace

import pytest

from workers import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def released(monkeypatch):
    calls = []

    def release():
        calls.append(True)
        return 2

    monkeypatch.setattr("workers.engine.rewards.release_cached_models", release)
    return calls


def _task():
    return SimpleNamespace(request=SimpleNamespace(hostname="worker@test"))


def test_the_models_are_released_after_a_run_returns(monkeypatch, released):
    monkeypatch.setattr("webapp.experiments.services.run_execute", lambda **kw: f"done {kw['run_id']}")
    assert tasks._execute(_task(), 41) == "done 41"
    assert released == [True]


def test_the_models_are_released_when_a_run_raises_and_the_error_is_kept(monkeypatch, released):
    def fail(**kw):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr("webapp.experiments.services.run_execute", fail)
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        tasks._execute(_task(), 41)
    assert released == [True]


def test_a_failing_release_does_not_mask_the_run_s_result(monkeypatch, caplog):
    def broken():
        raise RuntimeError("release broke")

    monkeypatch.setattr("workers.engine.rewards.release_cached_models", broken)
    monkeypatch.setattr("webapp.experiments.services.run_execute", lambda **kw: "done")
    assert tasks._execute(_task(), 41) == "done"
    assert "could not release its cached models" in caplog.text
