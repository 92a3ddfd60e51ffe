"""What the confirm-then-delete pages share: GET checks, POST deletes, a refusal is shown.

Each object's page (runs, reward models, datasets, imported pairs) is a page rather than a
JavaScript dialog, so the confirmation works without scripts and can say what goes and what
stays. The rules of each deletion live in its app's services; this only maps their outcome to
the page's answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.contrib import messages
from django.http import Http404


def first_few(items: Sequence[str], total: int, shown: int = 5) -> str:
    """The first ``shown`` of ``items`` joined with commas, and " and N more" for the rest of
    ``total``: how a refusal names the runs that keep an object."""
    more = f" and {total - shown} more" if total > shown else ""
    return f"{', '.join(items[:shown])}{more}"


@dataclass(frozen=True)
class DeletionOutcome:
    deleted: bool
    error: str  # the refusal's message, '' when the deletion is allowed or done
    posted: bool

    @property
    def status(self) -> int:
        """409 for a refused POST (the page is shown again with the reason), else 200."""
        return 409 if self.error and self.posted else 200


def deletion_attempt(request, *, check: Callable[[], None], delete: Callable[[], None],
                     refusals: tuple[type[Exception], ...], gone: type[Exception], done: str) -> DeletionOutcome:
    """GET: ``check``; POST: ``delete``, then the ``done`` message for the next page.

    An exception in ``refusals`` (each with a ``message``) is the outcome's error; ``gone``
    (the object was deleted by another request since the page looked it up) is a 404.
    """
    posted = request.method == "POST"
    try:
        if posted:
            delete()
            messages.success(request, done)
            return DeletionOutcome(deleted=True, error="", posted=True)
        check()
    except refusals as exc:
        return DeletionOutcome(deleted=False, error=exc.message, posted=posted)
    except gone as exc:
        raise Http404("It was deleted meanwhile.") from exc
    return DeletionOutcome(deleted=False, error="", posted=posted)
