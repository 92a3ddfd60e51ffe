import pytest

from tests.factories import make_dataset, make_policy, make_project, make_user
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run, RunKind
from webapp.experiments.services import run_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    user = make_user()
    project = make_project(owner=user)
    return {"user": user, "project": project, "dataset": make_dataset(project), "policy": make_policy(project)}


def launch(setup, config, **kw):
    return run_create(project=setup["project"], user=setup["user"], name=kw.pop("name", "r"), kind=kw.pop("kind", RunKind.POLICY),
                      config=config, dataset=setup["dataset"], policy=setup["policy"], **kw)


@pytest.mark.parametrize(
    "raw, words",
    [
        ('{"rollout": {"num_generations": 4', "not valid JSON (line 1"),
        ("[1, 2]", "must be a JSON object"),
        ('{"rollout": {"num_generations": 1}}', "num_generations"),
        ('{"rollout": {"bogus_knob": 3}}', "bogus_knob"),
        ('{"rewards": [{"name": "no_such_reward"}]}', "no_such_reward"),
    ],
)
def test_malformed_config_is_refused_with_the_field_and_nothing_is_stored(setup, raw, words):
    with pytest.raises(RunError) as info:
        launch(setup, raw)
    assert words in str(info.value)
    assert info.value.field.startswith("config")
    assert not Run.objects.exists()


def test_valid_config_is_stored_normalised_with_engine_defaults(setup):
    run = launch(setup, '{"rollout": {"num_generations": 4}}')
    assert run.status == "queued"
    assert run.config["rollout"]["num_generations"] == 4
    assert "algorithm" in run.config, "defaults are filled in so the run records what it will do"


def test_dataset_of_another_project_is_refused(setup):
    other = make_project(owner=setup["user"])
    with pytest.raises(RunError) as info:
        run_create(project=setup["project"], user=setup["user"], name="r", kind=RunKind.POLICY, config={},
                   dataset=make_dataset(other))
    assert info.value.field == "dataset"
    assert not Run.objects.exists()
