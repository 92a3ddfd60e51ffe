import pytest

from tests.factories import PASSWORD, make_project, make_user


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Users are made by the dozen here; the default PBKDF2 rounds would dominate the run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def annotator():
    return make_user()


@pytest.fixture
def researcher():
    return make_user()


@pytest.fixture
def project(annotator, researcher):
    """A project with one annotator and one researcher."""
    return make_project(annotator=annotator, researcher=researcher)


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client
