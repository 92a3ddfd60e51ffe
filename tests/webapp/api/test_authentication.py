import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from webapp.accounts.services import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db


def bearer(raw):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_valid_token_authenticates(owner):
    _, raw = api_token_create(user=owner, name="t")
    assert bearer(raw).get("/api/v1/projects/").status_code == 200


def test_revoked_token_answers_401_in_the_error_shape(owner):
    token, raw = api_token_create(user=owner, name="t")
    api_token_revoke(token=token)
    response = bearer(raw).get("/api/v1/projects/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_repeated_failed_tokens_are_throttled_even_for_a_good_token_after(owner):
    _, raw = api_token_create(user=owner, name="t")
    rates = {"auth": "3/min"}
    with override_settings(REST_FRAMEWORK={**__import__("django.conf").conf.settings.REST_FRAMEWORK,
                                           "DEFAULT_THROTTLE_RATES": rates}):
        from rest_framework.settings import api_settings
        from rest_framework.throttling import SimpleRateThrottle

        api_settings.reload()
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        try:
            codes = [bearer("steer_wrong").get("/api/v1/projects/").status_code for _ in range(4)]
            assert codes == [401, 401, 401, 429]
            throttled = bearer(raw).get("/api/v1/projects/")
            assert throttled.status_code == 429
            assert throttled.json()["error"]["code"] == "throttled"
        finally:
            api_settings.reload()
            SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES


@pytest.fixture
def auth_rate_3_a_minute():
    from django.conf import settings
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "3/min"}}):
        api_settings.reload()
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        try:
            yield
        finally:
            api_settings.reload()
            SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES


def test_a_guesser_cannot_dodge_the_throttle_with_a_new_forwarded_address(db, auth_rate_3_a_minute):
    codes = []
    for i in range(4):
        client = bearer("steer_wrong")
        client.credentials(HTTP_AUTHORIZATION="Bearer steer_wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
        codes.append(client.get("/api/v1/projects/").status_code)
    assert codes == [401, 401, 401, 429]


def test_behind_a_trusted_proxy_the_forwarded_client_address_is_counted(db, auth_rate_3_a_minute):
    from rest_framework.settings import api_settings

    with override_settings(REST_FRAMEWORK={**api_settings.user_settings, "NUM_PROXIES": 1}):
        api_settings.reload()
        codes = []
        for client_address in ("10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1"):
            client = bearer("steer_wrong")
            client.credentials(HTTP_AUTHORIZATION="Bearer steer_wrong", HTTP_X_FORWARDED_FOR=client_address)
            codes.append(client.get("/api/v1/projects/").status_code)
    assert codes == [401, 401, 401, 401, 429]


def test_failures_are_counted_in_the_database_and_refused_requests_are_not_checked(db, auth_rate_3_a_minute):
    """Counts are rows every web process shares (see tests/webapp/accounts/test_auth_failures.py
    for concurrent failures)."""
    from webapp.accounts.models import AuthFailureWindow

    for _ in range(5):
        bearer("steer_wrong").get("/api/v1/projects/")
    assert sum(AuthFailureWindow.objects.values_list("count", flat=True)) == 3  # the rest were refused unchecked


def test_session_login_reaches_the_api(client, owner):
    client.force_login(owner)
    assert client.get("/api/v1/projects/").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/schema/", "/api/v1/docs/", "/api/v1/redoc/"])
def test_the_schema_and_its_viewers_check_tokens_under_the_throttle_too(db, auth_rate_3_a_minute, path):
    """They checked a bad token at any rate: only the API's own views went through the throttle."""
    client = APIClient(raise_request_exception=False)  # the HTML viewers' 401 also signals the exception
    client.credentials(HTTP_AUTHORIZATION="Bearer steer_wrong")
    codes = [client.get(path).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
