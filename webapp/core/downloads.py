"""Streamed file downloads: the one response shape of every export and archive, page or API."""

from collections.abc import Iterable

from django.http import StreamingHttpResponse


def attachment_response(chunks: Iterable, *, filename: str, content_type: str) -> StreamingHttpResponse:
    """``chunks`` streamed as the attachment ``filename`` (which callers build from slugs and ids,
    so it is ASCII without quotes and safe in the header)."""
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
