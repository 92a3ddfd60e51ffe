"""Fixtures of the run pages' tests."""

import re

import pytest

from tests.factories import PASSWORD, make_project, make_user


@pytest.fixture
def researcher(client):
    """A project whose owner ``client`` is logged in as."""
    user = make_user()
    project = make_project(owner=user)
    client.login(username=user.username, password=PASSWORD)
    return project


@pytest.fixture
def project(researcher):
    """The same logged-in project, under the name the launch pages' tests use (test modules whose
    ``project`` is another one define their own)."""
    return researcher


def shown_runs(html: str) -> list[str]:
    """The names of the runs the runs list shows, in its order."""
    return re.findall(r'id="run-link-\d+" href="[^"]+">([^<]+)</a>', html)
