import pytest

from tests.factories import make_project, make_run, make_user
from webapp.experiments.errors import IllegalTransition
from webapp.experiments.models import Run, RunStatus
from webapp.experiments.services import run_transition

pytestmark = pytest.mark.django_db

LEGAL = [
    (RunStatus.QUEUED, RunStatus.RUNNING),
    (RunStatus.QUEUED, RunStatus.CANCELLED),
    (RunStatus.QUEUED, RunStatus.FAILED),
    (RunStatus.RUNNING, RunStatus.SUCCEEDED),
    (RunStatus.RUNNING, RunStatus.FAILED),
    (RunStatus.RUNNING, RunStatus.CANCELLED),
    (RunStatus.RUNNING, RunStatus.QUEUED),
]
ALL = list(RunStatus)
ILLEGAL = [(a, b) for a in ALL for b in ALL if (a, b) not in LEGAL]


@pytest.fixture
def project():
    return make_project(owner=make_user())


@pytest.mark.parametrize("start, end", LEGAL)
def test_legal_transition_is_applied(project, start, end):
    run = make_run(project, status=start)
    assert run_transition(run_id=run.id, to=end).status == end
    assert Run.objects.get(pk=run.pk).status == end


@pytest.mark.parametrize("start, end", ILLEGAL)
def test_illegal_transition_is_refused_and_changes_nothing(project, start, end):
    run = make_run(project, status=start)
    with pytest.raises(IllegalTransition):
        run_transition(run_id=run.id, to=end, error="should not be written")
    run.refresh_from_db()
    assert run.status == start and run.error == ""


def test_start_and_finish_set_timestamps_and_fields(project):
    run = make_run(project)
    run = run_transition(run_id=run.id, to=RunStatus.RUNNING, worker="gpu-1")
    assert run.started_at is not None and run.finished_at is None and run.worker == "gpu-1"
    started = run.started_at
    run = run_transition(run_id=run.id, to=RunStatus.QUEUED)
    run = run_transition(run_id=run.id, to=RunStatus.RUNNING)
    assert run.started_at == started, "a resumed run keeps its first start time"
    run = run_transition(run_id=run.id, to=RunStatus.SUCCEEDED)
    assert run.finished_at is not None and run.is_terminal
