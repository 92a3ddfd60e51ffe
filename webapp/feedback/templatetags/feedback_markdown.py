from django import template
from django.utils.html import format_html

from webapp.feedback.rendering import markdown_to_safe_html

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str):
    """``{{ candidate.text|markdown }}``: untrusted Markdown as sanitised HTML."""
    return markdown_to_safe_html(text)


@register.simple_tag
def model_text(text: str):
    """``{% model_text candidate.text %}``: untrusted model text, shown exactly as it is.

    The visible copy is the text itself, escaped, in a ``<pre>`` that keeps its whitespace
    and wraps (as the trajectory browser shows it): read as Markdown, ``2 * 3 * 4`` would lose
    its asterisks and a leading ``>`` or ``#`` would turn into a quote or a heading. Beside it,
    hidden, the same text as sanitised Markdown, which an annotator may switch to (text_view.js).
    The newline after ``<pre>`` is there because HTML drops the first one; a text that starts
    with a newline keeps it. ``dir="auto"``: a right-to-left text (Arabic, Hebrew) reads right to
    left, its punctuation where it belongs. A text with nothing visible in it says so, so that
    an empty completion is not taken for one that failed to load.
    """
    text = text or ""
    blank = "" if text.strip() else format_html('<p class="muted text-blank">{}</p>',
                                                "(only whitespace)" if text else "(empty)")
    return format_html('{}<pre class="model-text text-raw" dir="auto">\n{}</pre>'
                       '<div class="md text-rendered" dir="auto" hidden>{}</div>',
                       blank, text, markdown_to_safe_html(text))
