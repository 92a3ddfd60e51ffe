"""The example at the top of ``steer_client.client``, run as written against a live Steer server."""

import inspect
import textwrap

import pytest

import steer_client.client
from steer_client.client import SteerClient
from tests.factories import make_project, make_user
from webapp.accounts.services import api_token_create
from webapp.experiments.models import MetricPoint, Run, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


def module_example() -> str:
    """The indented code block of the module's docstring."""
    doc = inspect.getdoc(steer_client.client)
    return textwrap.dedent(doc.split("\n\n", 1)[1].split("\n\n", 1)[0])


def test_the_modules_example_runs_as_written(live_server):
    """It set a queued run succeeded, which the run state machine refuses (409): a reader who
    copied it got a SteerError at its fourth line."""
    user = make_user()
    project = make_project(owner=user)
    token = api_token_create(user=user, name="example")[1]
    code = module_example()
    assert (
        '"http://steer.local:8000"' in code
        and '"steer_…"' in code
        and "project=3" in code
    )
    code = (
        code.replace('"http://steer.local:8000"', repr(live_server.url))
        .replace('"steer_…"', repr(token))
        .replace("project=3", f"project={project.id}")
    )
    printed = []
    exec(code, {"SteerClient": SteerClient, "print": lambda *a: printed.append(a)})  # noqa: S102

    run = Run.objects.get(project=project, name="my-trl-run")
    assert run.status == RunStatus.SUCCEEDED
    assert MetricPoint.objects.filter(run=run).count() == 2
    assert printed == [("my-trl-run", 1.0)]
