"""Which query-string parameters a request's view read, so that a parameter it did not read
(a misspelt filter, ``?steps_min=5``) answers 400 naming it, instead of a list answered
unfiltered without a word; and a ``?format=`` no renderer writes answers 400 naming it."""

from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation

# DRF's ?format= override, which every view takes.
ALWAYS = frozenset({"format"})


def query_names_read(request, names) -> None:
    """Note that the view read (or checked) the query parameters ``names``."""
    request.__dict__.setdefault("_steer_query_names", set()).update(names)


def query_names_unread(request) -> tuple[list[str], list[str]]:
    """(parameters the request sent that its view did not read, those it read), both empty when
    the view read none: a detail takes no parameters and is not checked."""
    read = request.__dict__.get("_steer_query_names")
    if not read:
        return [], []
    unread = [name for name in request.query_params if name not in read and name not in ALWAYS]
    return unread, sorted(read)


class FormatNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, but a ``?format=`` that none of the route's renderers writes (``csv``,
    ``xml``) answers 400 naming ``format`` and the formats the route takes, where DRF answered
    404 "Not found.", which reads as if the run or project were missing."""

    def filter_renderers(self, renderers, format):
        kept = [renderer for renderer in renderers if renderer.format == format]
        if not kept:
            taken = ", ".join(sorted({renderer.format for renderer in renderers}))
            raise ValidationError({"format": [f"no format {format!r} here; this route answers {taken}"]})
        return kept
