"""A new username that would pass for an existing account's (another case or width, Cyrillic
or Greek look-alike letters, letters that draw nothing) is refused wherever accounts are made,
naming the account it clashes with; names are stored NFKC-normalised."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_user
from webapp.accounts.errors import AccountError
from webapp.accounts.services import user_create_with_generated_password, username_clean

User = get_user_model()
CYRILLIC_A = "\u0430"  # а


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.django_db
@pytest.mark.parametrize("existing, new", [
    ("alice", CYRILLIC_A + "lice"),  # Cyrillic а
    ("alice", "\u0391LICE"),  # Greek capital alpha, then Latin capitals
    ("alice", "aIice"),  # a capital I for the l
    ("nick", "\u039dick"),  # Greek capital nu
    ("bob", "b0b"),  # a zero for the o
    ("peter", "\u0440\u0435ter"),  # Cyrillic р, е
    ("olga", "\u03bflga"),  # Greek omicron
])
def test_a_look_alike_of_an_existing_name_is_refused_naming_it(existing, new):
    make_user(existing)
    with pytest.raises(AccountError, match=f"looks like the existing account '{existing}'") as refused:
        username_clean(new)
    assert refused.value.field == "username" and "U+" in refused.value.message


@pytest.mark.django_db
@pytest.mark.parametrize("new", ["Alice", "ALICE", "\uff41\uff4c\uff49\uff43\uff45", "ａｌｉｃｅ".upper()])
def test_the_same_name_in_another_case_or_width_is_refused_as_existing(new):
    make_user("alice")
    with pytest.raises(AccountError, match="an account named 'alice' already exists"):
        username_clean(new)


@pytest.mark.django_db
@pytest.mark.parametrize("existing, new", [("alice", "alicia"), ("ian", "iain"), ("anna", "anne"),
                                           ("user1", "user2"), ("chloé", "chloe")])
def test_names_that_only_resemble_each_other_are_allowed(existing, new):
    make_user(existing)
    assert username_clean(new) == new


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["\u3164\u3164", "\uffa0", "ali\u3164ce", "\u115f\u1160"])
def test_a_name_with_letters_that_draw_nothing_is_refused(name):
    with pytest.raises(AccountError, match="characters that show nothing"):
        username_clean(name)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["\u200b\u200b", "ali\u200dce", "\u00a0", "\x07bell"])
def test_a_name_with_format_control_or_space_characters_is_refused(name):
    with pytest.raises(AccountError):
        username_clean(name)
    assert not User.objects.exists()


@pytest.mark.django_db
def test_names_are_stored_nfkc_normalised():
    user, _ = user_create_with_generated_password(username="\uff42\uff4f\uff42\u2460")  # ｂｏｂ①
    assert User.objects.get(pk=user.pk).username == "bob1"


# ---------------------------------------------------------------- where accounts are made


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.mark.django_db
def test_the_members_page_refuses_to_create_a_look_alike_of_a_teammate(client):
    owner, alice = make_user(), make_user("alice")
    project = make_project(owner=owner, annotator=alice)
    impostor = CYRILLIC_A + "lice"
    offered = login(client, owner).post(reverse("projects:member-add", args=[project.id]),
                                        {"username": impostor, "role": "annotator"}).content.decode()
    assert 'id="account-offer"' not in offered and "looks like the existing account" in offered
    created = client.post(reverse("projects:member-account-create", args=[project.id]),
                          {"username": impostor, "role": "annotator"}).content.decode()
    assert "looks like the existing account" in created and "CYRILLIC SMALL LETTER A" in created
    assert list(User.objects.values_list("username", flat=True).order_by("pk")) == [owner.username, "alice"]


def admin_client(client):
    admin = make_user()
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    return client


@pytest.mark.django_db
def test_the_admin_refuses_a_look_alike_and_stores_names_nfkc(client):
    make_user("alice")
    admin_client(client)
    form = {"password1": "a-long-passphrase-42", "password2": "a-long-passphrase-42", "usable_password": "true"}
    refused = client.post(reverse("admin:auth_user_add"), {**form, "username": CYRILLIC_A + "lice"})
    assert "looks like the existing account" in refused.content.decode()
    assert not User.objects.filter(username=CYRILLIC_A + "lice").exists()
    client.post(reverse("admin:auth_user_add"), {**form, "username": "\uff42\uff4f\uff42"})
    assert User.objects.filter(username="bob").exists()


@pytest.mark.django_db
def test_the_admin_refuses_renaming_into_a_look_alike_but_edits_an_account_keeping_its_name(client):
    make_user("alice")
    bob = make_user("bob")
    admin_client(client)
    form = {"is_active": "", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01", "initial-date_joined_1": "00:00:00"}
    refused = client.post(reverse("admin:auth_user_change", args=[bob.pk]), {**form, "username": CYRILLIC_A + "lice"})
    assert refused.status_code == 200 and "looks like the existing account" in refused.content.decode()
    assert User.objects.get(pk=bob.pk).username == "bob"
    # A look-alike made before this check can still be deactivated under its own name.
    legacy = User.objects.create(username=CYRILLIC_A + "lice")
    response = client.post(reverse("admin:auth_user_change", args=[legacy.pk]), {**form, "username": legacy.username})
    assert response.status_code == 302 and not User.objects.get(pk=legacy.pk).is_active


@pytest.mark.django_db
def test_createsuperuser_refuses_a_look_alike(monkeypatch):
    make_user("alice")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-passphrase-42")
    with pytest.raises(CommandError, match="looks like the existing account 'alice'"):
        call_command("createsuperuser", "--noinput", "--username", "\u0391lice", "--email", "x@example.org",
                     stdout=io.StringIO())
    call_command("createsuperuser", "--noinput", "--username", "root", "--email", "x@example.org",
                 stdout=io.StringIO())
    assert User.objects.get(username="root").is_superuser


@pytest.mark.django_db(transaction=True)
def test_look_alikes_created_at_once_are_not_both_made():
    """The check and the insert run under one lock: of 'alice' and 'аlice' sent together,
    one account is made and the other refused."""
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs a server database")
    names = ["alice", CYRILLIC_A + "lice", "\u0391lice", "al\u0456ce"] * 2
    barrier = threading.Barrier(len(names))
    refused = []

    def create(name):
        barrier.wait()
        try:
            user_create_with_generated_password(username=name)
        except AccountError:
            refused.append(name)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert User.objects.count() == 1 and len(refused) == len(names) - 1
