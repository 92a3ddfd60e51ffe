from rest_framework.pagination import CursorPagination


class DefaultCursorPagination(CursorPagination):
    """Stable paging over large, growing tables; `?page_size=` up to 1000."""

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
