from django import template

from webapp.feedback.rendering import markdown_to_safe_html

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str):
    """``{{ candidate.text|markdown }}``: untrusted Markdown as sanitised HTML."""
    return markdown_to_safe_html(text)
