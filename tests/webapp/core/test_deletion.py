"""deletion_attempt: GET checks, POST deletes; refusals are shown, 409 only for a refused POST."""

import pytest
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.http import Http404

from webapp.core.deletion import deletion_attempt


class Refused(Exception):
    def __init__(self, message):
        self.message = message
        super().__init__(message)


class Gone(Exception):
    pass


def request_for(rf, method):
    request = getattr(rf, method)("/")
    request.session = {}
    request._messages = FallbackStorage(request)
    return request


def attempt(request, calls, *, check=None, delete=None):
    def record(name, fail):
        def call():
            calls.append(name)
            if fail:
                raise fail
        return call
    return deletion_attempt(request, check=record("check", check), delete=record("delete", delete),
                            refusals=(Refused,), gone=Gone, done="Deleted it.")


def test_get_only_checks_and_post_only_deletes_with_a_message(rf):
    calls = []
    outcome = attempt(request_for(rf, "get"), calls)
    assert (outcome.deleted, outcome.error, outcome.status, calls) == (False, "", 200, ["check"])
    calls = []
    request = request_for(rf, "post")
    outcome = attempt(request, calls)
    assert (outcome.deleted, outcome.error, calls) == (True, "", ["delete"])
    assert [str(m) for m in get_messages(request)] == ["Deleted it."]


def test_a_refusal_is_the_error_shown_with_409_only_after_a_post(rf):
    shown = attempt(request_for(rf, "get"), [], check=Refused("in use"))
    assert (shown.deleted, shown.error, shown.status) == (False, "in use", 200)
    request = request_for(rf, "post")
    refused = attempt(request, [], delete=Refused("in use"))
    assert (refused.deleted, refused.error, refused.status) == (False, "in use", 409)
    assert not list(get_messages(request))


def test_an_object_deleted_meanwhile_is_a_404_and_other_errors_propagate(rf):
    with pytest.raises(Http404):
        attempt(request_for(rf, "post"), [], delete=Gone())
    with pytest.raises(ValueError):
        attempt(request_for(rf, "post"), [], delete=ValueError("bug"))
