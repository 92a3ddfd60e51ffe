"""Failed sign-ins: counted atomically in the database over two fixed windows; passwords are
reserved before they are checked, per address and per username, on every form."""

import threading

import pytest
from django.db import connection
from django.urls import reverse

from tests.factories import PASSWORD, make_user
from webapp.accounts.auth_failures import Rate, failure_record, failure_refund, failure_reserve, failure_wait
from webapp.accounts.models import AuthFailureWindow

MINUTE = Rate(limit=3, period_s=60)


@pytest.mark.parametrize("text, rate", [("20/min", Rate(20, 60)), ("10/hour", Rate(10, 3600)),
                                        (" 5 / 10min ", Rate(5, 600)), ("1/d", Rate(1, 86400))])
def test_rates_parse_like_drfs(text, rate):
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["20", "0/min", "20/fortnight", "-1/min", ""])
def test_a_bad_rate_is_named(text):
    with pytest.raises(ValueError, match="not a rate"):
        Rate.parse(text)


@pytest.mark.django_db
def test_the_limit_th_failure_closes_the_key_through_the_next_window():
    limits = [("k", MINUTE)]
    start = 6000.0  # a window boundary
    for i in range(3):
        assert failure_wait(limits=limits, now=start + i) == 0
        failure_record(limits=limits, now=start + i)
    assert failure_wait(limits=limits, now=start + 10) == 110  # counted in this window and the next
    assert failure_wait(limits=limits, now=start + 60.5) == 60  # just after the boundary: still closed
    assert failure_wait(limits=limits, now=start + 120) == 0
    assert failure_wait(limits=[("other", MINUTE)], now=start + 10) == 0


@pytest.mark.django_db
def test_failures_split_over_two_windows_count_together_until_the_first_drops_out():
    limits = [("k", MINUTE)]
    failure_record(limits=limits, now=6050.0)
    failure_record(limits=limits, now=6055.0)
    assert failure_wait(limits=limits, now=6061.0) == 0
    failure_record(limits=limits, now=6061.0)  # 2 + 1: no stretch of 60 s may hold a fourth
    assert failure_wait(limits=limits, now=6070.0) == 50
    assert failure_wait(limits=limits, now=6120.0) == 0  # the window of the first two is gone


@pytest.mark.django_db
def test_a_reservation_counts_the_attempt_and_a_refund_takes_it_back():
    limits = [("k", MINUTE)]
    first = failure_reserve(limits=limits, now=6000.0)
    assert first.wait == 0 and AuthFailureWindow.objects.get().count == 1
    failure_refund(first)
    assert AuthFailureWindow.objects.get().count == 0
    for i in range(3):
        assert failure_reserve(limits=limits, now=6001.0 + i).wait == 0  # three failures
    refused = failure_reserve(limits=limits, now=6010.0)
    assert refused.wait == 110 and refused.rows == ()
    assert AuthFailureWindow.objects.get().count == 3  # the refused attempt left no count


@pytest.mark.django_db
def test_a_reservation_over_one_key_takes_back_its_count_on_the_others():
    tight, loose = ("user", MINUTE), ("address", Rate(100, 60))
    for _ in range(3):
        failure_reserve(limits=[loose, tight], now=6000.0)
    assert failure_reserve(limits=[loose, tight], now=6001.0).wait > 0
    assert dict(AuthFailureWindow.objects.values_list("key", "count")) == {"60:address": 3, "60:user": 3}


@pytest.mark.django_db
def test_rows_that_no_longer_count_are_dropped_when_a_failure_is_recorded():
    failure_record(limits=[("old", MINUTE)], now=6000.0)
    failure_record(limits=[("new", MINUTE)], now=6000.0 + 200)
    assert list(AuthFailureWindow.objects.values_list("key", flat=True)) == ["60:new"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_failures_are_all_counted():
    """Each failure is one UPDATE … count + 1 (or the window's first INSERT, retried as an
    UPDATE when another request inserted first): none is lost between processes."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs a server database")
    threads_n, per_thread = 8, 5
    barrier = threading.Barrier(threads_n)

    def guess():
        barrier.wait()
        try:
            for _ in range(per_thread):
                failure_record(limits=[("k", Rate(1000, 3600))], now=7200.0)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert AuthFailureWindow.objects.get(key="3600:k").count == threads_n * per_thread


# ---------------------------------------------------------------- the login form


@pytest.fixture
def rates(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STEER_LOGIN_FAILURE_RATES = {"address": "5/hour", "username": "3/hour"}


def log_in(client, username, password="wrong", address="10.0.0.1"):
    return client.post(reverse("accounts:login"), {"username": username, "password": password},
                       REMOTE_ADDR=address)


@pytest.mark.django_db
def test_a_username_guessed_too_often_is_closed_even_to_its_right_password(client, rates):
    user = make_user()
    assert [log_in(client, user.username).status_code for _ in range(3)] == [200, 200, 200]
    refused = log_in(client, user.username.upper(), PASSWORD, address="10.9.9.9")  # another address, same name
    assert refused.status_code == 429
    body = refused.content.decode()
    assert "Too many failed log-ins" in body and "Try again in" in body and "_auth_user_id" not in client.session
    other = make_user()
    assert log_in(client, other.username, PASSWORD).status_code == 302  # other users still get in


@pytest.mark.django_db
def test_an_address_guessing_many_usernames_is_closed(client, rates):
    codes = [log_in(client, f"nobody{i}").status_code for i in range(6)]
    assert codes == [200] * 5 + [429]
    assert log_in(client, "nobody99", address="10.0.0.2").status_code == 200


@pytest.mark.django_db
def test_a_locked_out_attempt_does_not_check_the_password(client, rates, monkeypatch):
    from django.contrib.auth.backends import ModelBackend

    checked = []
    check = ModelBackend.authenticate
    monkeypatch.setattr(ModelBackend, "authenticate", lambda *a, **k: checked.append(k) or check(*a, **k))
    for _ in range(3):
        log_in(client, "alice")
    assert len(checked) == 3
    assert log_in(client, "alice").status_code == 429 and len(checked) == 3


@pytest.mark.django_db
def test_successful_log_ins_do_not_count(client, rates):
    user = make_user()
    for _ in range(6):
        assert log_in(client, user.username, PASSWORD).status_code == 302
        client.logout()
    assert not AuthFailureWindow.objects.filter(count__gt=0).exists()


@pytest.mark.django_db
def test_the_admin_login_shares_the_limit(client, rates):
    admin = make_user()
    admin.is_staff = admin.is_superuser = True
    admin.save()
    for _ in range(3):
        assert client.post("/admin/login/", {"username": admin.username, "password": "guess"},
                           REMOTE_ADDR="10.0.0.1").status_code == 200
    assert log_in(client, admin.username, PASSWORD).status_code == 429
    client.post("/admin/login/", {"username": admin.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.1")
    assert "_auth_user_id" not in client.session


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.django_db
def test_look_alike_spellings_of_a_username_share_its_count(client, rates):
    """Django's login form normalises usernames with NFKC: 'ｕｓｅｒ1' logs in as 'user1'."""
    user = make_user()
    for spelling in (user.username, fullwidth(user.username), user.username.upper()):
        log_in(client, spelling, address="10.0.0.9")
    assert log_in(client, fullwidth(user.username[:2]) + user.username[2:], PASSWORD).status_code == 429


@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_past_the_limit_are_refused_unchecked(settings):
    """Reservations queue on the count's row: of 12 simultaneous guesses at a limit of 3,
    exactly 3 are checked."""
    from django.test import Client

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs a server database")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STEER_LOGIN_FAILURE_RATES = {"address": "100/hour", "username": "3/hour"}
    user = make_user()
    guesses = 12
    barrier = threading.Barrier(guesses)
    codes = []

    def guess(i):
        c = Client()
        barrier.wait()
        try:
            codes.append(log_in(c, user.username, f"wrong{i}").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200] * 3 + [429] * 9


@pytest.mark.django_db
def test_a_form_with_a_missing_field_is_not_counted(client, rates):
    for _ in range(4):
        assert client.post(reverse("accounts:login"), {"username": "alice"}).status_code == 200
    assert not AuthFailureWindow.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_sessions_logged_in_before_the_new_backend_stay_logged_in(client):
    """Migration 0003 moves them from ModelBackend, which Django would no longer honour."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.db.migrations.executor import MigrationExecutor

    user = make_user()
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0002_auth_failure_windows")])
    old = SessionStore()
    old.update({"_auth_user_id": str(user.pk), "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                "_auth_user_hash": user.get_session_auth_hash()})
    old.create()

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    client.cookies["sessionid"] = old.session_key
    assert client.get(reverse("accounts:tokens")).status_code == 200  # not sent to the login page


@pytest.mark.django_db(transaction=True)
def test_a_burst_across_a_window_boundary_is_held_to_the_limit():
    """Attempts just after a boundary queue behind those just before it (one lock per key,
    not per window row): of 24 at once around the boundary, 3 go ahead."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs a server database")
    attempts = 24
    barrier = threading.Barrier(attempts)
    allowed = []

    def attempt(i):
        barrier.wait()
        try:
            if not failure_reserve(limits=[("k", MINUTE)], now=6059.9 if i % 2 else 6060.1).wait:
                allowed.append(i)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 3


@pytest.mark.django_db
def test_the_old_password_of_a_password_change_is_limited_too(client, rates):
    user = make_user()
    client.login(username=user.username, password=PASSWORD)
    url = reverse("accounts:password-change")

    def change(old):
        return client.post(url, {"old_password": old, "new_password1": "a-new-Passw0rd-123",
                                 "new_password2": "a-new-Passw0rd-123"}, REMOTE_ADDR="10.0.0.1")

    for _ in range(3):
        assert "Your old password was entered incorrectly" in change("guess").content.decode()
    refused = change(PASSWORD).content.decode()
    assert "Too many wrong passwords" in refused
    user.refresh_from_db()
    assert user.check_password(PASSWORD)  # the right one, once refused, changed nothing


@pytest.mark.django_db
def test_the_admins_password_change_sends_to_the_limited_page(client):
    admin = make_user()
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    response = client.get("/admin/password_change/")
    assert response.status_code == 302 and response.url == reverse("accounts:password-change")
