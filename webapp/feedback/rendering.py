"""Untrusted model text (prompts, completions) and guidelines as sanitised HTML.

Markdown with raw HTML turned off, so ``<script>`` in a completion shows as the text it is;
then nh3 with a strict allow-list as a second wall: no scripts, no event handlers, no
images, only http(s)/mailto links, and every link gets rel="noopener nofollow".
"""

import threading

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

ALLOWED_TAGS = {
    "p", "br", "hr", "pre", "code", "em", "strong", "del", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener nofollow"


class _NoRawHtml(markdown.Extension):
    """Treat raw HTML in the source as text instead of passing it through."""

    def extendMarkdown(self, md):  # noqa: N802 (Markdown's API)
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")


_CLEANER = nh3.Cleaner(tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
                       link_rel=LINK_REL, strip_comments=True)
_local = threading.local()  # a Markdown instance is reusable (reset between texts) but not thread-safe


def sanitise_html(html: str) -> str:
    return _CLEANER.clean(html)


def _markdown() -> markdown.Markdown:
    md = getattr(_local, "md", None)
    if md is None:
        md = _local.md = markdown.Markdown(extensions=[_NoRawHtml(), "fenced_code", "tables", "sane_lists"],
                                           output_format="html")
    return md


def markdown_to_safe_html(text: str) -> SafeString:
    """Sanitised HTML for `text` read as Markdown (fenced code blocks and tables included)."""
    md = _markdown()
    html = md.reset().convert(text or "")
    return mark_safe(sanitise_html(html))  # noqa: S308 (cleaned by nh3 just above)
