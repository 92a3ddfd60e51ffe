import pytest


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Users are made by the dozen here; the default PBKDF2 rounds would dominate the run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
