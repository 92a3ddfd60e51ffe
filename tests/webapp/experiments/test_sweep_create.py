"""sweeps.sweep_create, the API's way into a sweep: the grid typed by the engine's defaults of the
run's kind, and a kind the launch pages do not sweep refused naming ``kind``."""

import pytest

from tests.factories import make_project, make_user
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run, RunKind
from webapp.experiments.sweeps import (
    SweepAxis,
    sweep_create,
    sweep_defaults,
    sweep_parse,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("kind", "grid", "axis"), [
    (RunKind.POLICY, {"rollout.num_generations": ["4", 8.0]}, SweepAxis("rollout.num_generations", (4, 8))),
    (RunKind.DPO, {"dpo.beta": [0, "0.5"]}, SweepAxis("dpo.beta", (0.0, 0.5))),
    (RunKind.SFT, {"sft.epochs": "1, 2"}, SweepAxis("sft.epochs", (1, 2))),
    (RunKind.EVALUATION, {"rollout.temperature": [1, "0.7"]}, SweepAxis("rollout.temperature", (1.0, 0.7))),
])
def test_a_grid_is_typed_by_the_defaults_of_its_runs_kind(kind, grid, axis):
    assert sweep_parse(grid, defaults=sweep_defaults(kind), config={}) == [axis]


def test_a_setting_of_another_kind_is_unknown():
    with pytest.raises(RunError, match="unknown setting 'dpo.beta'"):
        sweep_parse({"dpo.beta": [0.1, 0.2]}, defaults=sweep_defaults(RunKind.SFT), config={})


@pytest.mark.parametrize("kind", [RunKind.REWARD_MODEL, RunKind.EXTERNAL])
def test_a_kind_the_pages_do_not_sweep_is_refused_naming_kind_and_nothing_is_launched(kind):
    user = make_user()
    with pytest.raises(RunError) as refused:
        sweep_create(project=make_project(owner=user), user=user, idempotency_key=None, name="s", kind=kind,
                     config={}, grid={"optim.lr": [1e-6, 1e-5]})
    assert refused.value.field == "kind"
    assert refused.value.message == f"a sweep launches policy, dpo, sft or evaluation runs, not {kind} runs"
    assert not Run.objects.exists()
