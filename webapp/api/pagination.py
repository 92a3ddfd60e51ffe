from django.core.exceptions import ValidationError
from rest_framework.exceptions import NotFound, ValidationError as DrfValidationError
from rest_framework.pagination import Cursor, CursorPagination

from webapp.api.query_strings import query_names_read
from webapp.core.query import BIGINT_MAX


class DefaultCursorPagination(CursorPagination):
    """Stable paging over large, growing tables; `?page_size=` up to 1000."""

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        """``?page_size=`` from 1 to 1000; anything else answers 400 naming it (DRF falls back
        to the default without a word)."""
        query_names_read(request, (self.cursor_query_param, self.page_size_query_param))
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= self.max_page_size):
            raise DrfValidationError({self.page_size_query_param: [
                f"a whole number from 1 to {self.max_page_size}, got {raw[:40]!r}"]})
        return int(raw)

    def get_ordering(self, request, queryset, view):
        """The client's or the view's ordering, then the id: the cursor holds a position in the
        first field and how many rows at that position came before, which only names the same
        rows on the next request if rows tied in the first field keep one order."""
        ordering = tuple(super().get_ordering(request, queryset, view))
        if not any(field.lstrip("-") in ("id", "pk") for field in ordering):
            ordering += ("id",)
        return ordering

    def paginate_queryset(self, queryset, request, view=None):
        """DRF's paging, with a cursor whose position does not fit the ordering's field (a
        tampered or hand-made cursor, e.g. ``p=abc`` for ids) answered as an invalid cursor
        (404) rather than an error of the server."""
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValueError, TypeError, ValidationError) as exc:
            raise NotFound(self.invalid_cursor_message) from exc

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] |= {"minimum": 1, "maximum": self.max_page_size, "default": self.page_size}
        return parameters


class PositionCursorPagination(DefaultCursorPagination):
    """The same paging (``?cursor=``, ``?page_size=``, ``next``/``previous`` links) over items
    at positions 1, 2, … that are not rows of a table: the pairs of one set, elements of one
    stored array. The cursor holds the position a page starts after, or, going back, before."""

    def paginate_positions(self, fetch, request) -> list:
        """One page of items. ``fetch(limit=, after=)`` gives the first ``limit`` items after a
        position and ``fetch(limit=, before=)`` the last ones before it, each as ``(position,
        item)`` in ascending order; an invalid cursor answers 404 as on every list."""
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        cursor = self.decode_cursor(request)
        try:
            position = int(cursor.position) if cursor else 0
        except (TypeError, ValueError) as exc:
            raise NotFound(self.invalid_cursor_message) from exc
        if not 0 <= position <= BIGINT_MAX or (cursor and cursor.reverse and position < 1):
            raise NotFound(self.invalid_cursor_message)
        if cursor and cursor.reverse:
            rows = fetch(limit=self.page_size + 1, before=position)
            more_before, rows = len(rows) > self.page_size, rows[-self.page_size:]
            more_after = True  # the cursor was made from the first item of a later page
        else:
            rows = fetch(limit=self.page_size + 1, after=position)
            more_after, rows = len(rows) > self.page_size, rows[:self.page_size]
            more_before = bool(rows) and rows[0][0] > 1
        self._next = self._position_link(rows[-1][0], reverse=False) if rows and more_after else None
        self._previous = self._position_link(rows[0][0], reverse=True) if rows and more_before else None
        return [item for _, item in rows]

    def _position_link(self, position: int, *, reverse: bool) -> str:
        return self.encode_cursor(Cursor(offset=0, reverse=reverse, position=str(position)))

    def get_next_link(self):
        return self._next

    def get_previous_link(self):
        return self._previous
