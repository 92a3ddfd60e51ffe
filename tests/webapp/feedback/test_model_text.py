"""Model text (prompts, completions) shows exactly as written; rendered Markdown is an opt-in copy."""

import re

import pytest
from django.urls import reverse
from django.utils.html import escape

from tests.factories import make_task
from tests.webapp.feedback.conftest import login

pytestmark = pytest.mark.django_db

ARITHMETIC = "2 * 3 * 4 = 24, so 2*3*4 is 24"
QUOTE_AND_HEADING = "> 25 is the answer\n# 25\n\n    indented   spaces\tand a tab <b>bold?</b>"
# nh3 lets no <div> through, so the first </div> ends the copy.
RENDERED_COPY = re.compile(r'<div class="md text-rendered" dir="auto"( hidden)?>.*?</div>', re.DOTALL)


def visible(body: str) -> str:
    """The page without its hidden rendered-Markdown copies."""
    return RENDERED_COPY.sub("", body)


def raw_block(text: str) -> str:
    return f'<pre class="model-text text-raw" dir="auto">\n{escape(text)}</pre>'


@pytest.mark.parametrize("completions", [[ARITHMETIC, QUOTE_AND_HEADING], [ARITHMETIC, QUOTE_AND_HEADING, "*"]])
def test_the_workspace_shows_completions_and_prompt_as_written_by_default(client, project, annotator, completions):
    make_task(project, prompt="# Compute\n\n*Show* 2*3*4", completions=completions)
    body = login(client, annotator).get(reverse("feedback:annotate", args=[project.id])).content.decode()
    shown = visible(body)
    for text in [ARITHMETIC, QUOTE_AND_HEADING, "# Compute\n\n*Show* 2*3*4"]:
        assert raw_block(text) in shown
    assert not re.search(r"<(em|strong|blockquote|h1)\b", shown.split('id="label-form"')[1])
    # Every rendered copy is hidden until the annotator asks for it.
    copies = RENDERED_COPY.findall(body)
    assert len(copies) == len(completions) + 1 and all(copies)


def test_a_text_that_starts_with_a_newline_keeps_it(client, project, annotator):
    """HTML drops one newline right after <pre>; the one the template adds is that one."""
    make_task(project, prompt="\n\nafter two newlines", completions=["\nx", "y"])
    body = login(client, annotator).get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert raw_block("\n\nafter two newlines") in body and raw_block("\nx") in body


def test_chat_prompts_show_each_message_as_written(client, project, annotator):
    make_task(project, prompt_messages=[{"role": "system", "content": "> be terse"},
                                        {"role": "user", "content": "2*3*4?"}])
    body = login(client, annotator).get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert raw_block("> be terse") in body and raw_block("2*3*4?") in body
    assert "<blockquote>" not in visible(body)


def test_the_rendered_copy_is_still_sanitised(client, project, annotator):
    make_task(project, completions=["<script>alert(1)</script> [x](javascript:alert(1)) *hi*", "b"])
    body = login(client, annotator).get(reverse("feedback:annotate", args=[project.id])).content.decode()
    copies = re.findall(r'<div class="md text-rendered" dir="auto" hidden>(.*?)</div>', body, re.DOTALL)
    [copy] = [c for c in copies if "<em>hi</em>" in c]
    assert "&lt;script&gt;" in copy and "<script" not in copy
    assert "javascript:" not in copy
    assert raw_block("<script>alert(1)</script> [x](javascript:alert(1)) *hi*") in body


def test_the_switch_is_offered_raw_first_and_only_with_a_task(client, project, annotator):
    login(client, annotator)
    body = client.get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert "text-view" not in body.split("<main>")[1]  # queue empty: nothing to switch
    make_task(project)
    body = client.get(reverse("feedback:annotate", args=[project.id])).content.decode()
    assert f'data-text-view-key="steer.textView.{project.id}" hidden' in body
    assert re.search(r'data-text-view="raw" aria-pressed="true"', body)
    assert re.search(r'data-text-view="rendered" aria-pressed="false"', body)
    assert "steer/text_view" in body


def test_the_task_page_shows_model_text_as_written_too(client, project, researcher):
    task = make_task(project, prompt="# 25", completions=[ARITHMETIC, "> quoted"])
    body = login(client, researcher).get(reverse("feedback:task_detail", args=[project.id, task.id])).content.decode()
    assert raw_block("# 25") in body and raw_block(ARITHMETIC) in body and raw_block("> quoted") in body
    assert not re.search(r"<(em|blockquote|h1)\b", visible(body).split('class="prompt card"')[1])
    assert "steer/text_view" in body


def test_an_empty_or_blank_text_says_so(client, project, annotator):
    """A blank card read as a completion that failed to load; an empty completion is one to judge."""
    make_task(project, completions=["", "  \n ", "an answer"])
    body = login(client, annotator).get(reverse("feedback:annotate", args=[project.id])).content.decode()
    cards = body.split('class="candidate-text"')[1:]
    assert '<p class="muted text-blank">(empty)</p>' in cards[0] and raw_block("") in cards[0]
    assert '<p class="muted text-blank">(only whitespace)</p>' in cards[1] and raw_block("  \n ") in cards[1]
    assert "text-blank" not in cards[2].split("</li>")[0]
