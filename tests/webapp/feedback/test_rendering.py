"""Untrusted Markdown renders as inert HTML."""

from django.template import Context, Template

from webapp.feedback.rendering import markdown_to_safe_html


def test_script_tags_show_as_text():
    html = markdown_to_safe_html("<script>window.pwned = 1</script>")
    assert "<script" not in html
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in html


def test_event_handler_attributes_never_survive():
    html = markdown_to_safe_html('<img src=x onerror="alert(1)"> and <div onclick="x()">hi</div>')
    assert "<img" not in html and "<div" not in html
    assert "&lt;img" in html


def test_javascript_links_lose_their_href_and_links_get_rel():
    html = markdown_to_safe_html("[click](javascript:alert(1)) and [docs](https://example.org)")
    assert "javascript:" not in html
    assert '<a href="https://example.org" rel="noopener nofollow">docs</a>' in html


def test_code_blocks_keep_their_text_escaped():
    html = markdown_to_safe_html("```python\nif a < b:\n    print('<b>')\n```")
    assert "<pre><code>" in html
    assert "if a &lt; b:" in html and "&lt;b&gt;" in html


def test_markdown_images_are_dropped():
    assert "<img" not in markdown_to_safe_html("![pixel](https://tracker.example/p.gif)")


def test_template_filter_renders_sanitised_html():
    out = Template("{% load feedback_markdown %}{{ text|markdown }}").render(Context({"text": "**bold** <b>x</b>"}))
    assert "<strong>bold</strong>" in out and "&lt;b&gt;x&lt;/b&gt;" in out
