"""Pages outside the annotation workspace, in a real browser with no network beyond the server."""

import pytest

from tests.browser.session import log_in
from tests.factories import PASSWORD, make_project, make_task, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def only_this_server(page, live_server):
    """Requests to any other host fail, as on an offline install; returns the scripts, styles,
    fonts and data the page asked of other hosts (Redoc's footer logo, an image it hides when it
    fails, is not counted)."""
    elsewhere = []

    def route(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            if route.request.resource_type != "image":
                elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    return elsewhere


@pytest.mark.parametrize("path, ready", [("/api/v1/docs/", ".swagger-ui .info .title"),
                                         ("/api/v1/redoc/", "redoc-wrapper, .redoc-wrap")])
def test_the_api_docs_render_without_the_internet(page, live_server, path, ready):
    user = make_user()
    make_project(owner=user)
    log_in(page, live_server, user)
    elsewhere = only_this_server(page, live_server)
    page.goto(f"{live_server.url}{path}")
    page.wait_for_selector(ready)
    assert "Steer API" in page.content()
    assert elsewhere == []


def test_a_submit_after_the_session_ended_goes_to_the_login_page_and_back(page, live_server):
    user = make_user()
    project = make_project(annotator=user)
    make_task(project)
    log_in(page, live_server, user)
    annotate = f"{live_server.url}/projects/{project.id}/feedback/annotate/"
    page.goto(annotate)
    page.keyboard.press("1")
    page.context.clear_cookies(name="sessionid")
    page.click("#label-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/accounts/login/**")
    assert page.locator("#workspace").count() == 0  # a login page, not one inside the workspace
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(annotate)


def test_a_refused_submit_says_so_and_keeps_what_was_typed(page, live_server):
    user = make_user()
    project = make_project(annotator=user)
    make_task(project)
    log_in(page, live_server, user)
    page.goto(f"{live_server.url}/projects/{project.id}/feedback/annotate/")
    page.keyboard.press("1")
    page.fill("textarea[name=critique]", "A is right, B drifts.")
    page.context.clear_cookies(name="csrftoken")  # the POST is refused with 403
    page.click("#label-form button[type=submit]")
    banner = page.wait_for_selector("#request-error:not([hidden])")
    assert "refused" in banner.text_content() and "403" in banner.text_content()
    assert page.input_value("textarea[name=critique]") == "A is right, B drifts."


def test_a_reward_model_is_deleted_with_its_training_run_from_the_list(page, live_server, settings, tmp_path):
    """Through the list's link, the confirmation page's box and its form (CSRF enforced here)."""
    from webapp.experiments.models import Run, RunKind, RunStatus
    from webapp.rewards.models import RewardModel

    settings.STEER_CHECKPOINT_DIR = tmp_path
    user = make_user()
    project = make_project(owner=user)
    run = Run.objects.create(project=project, name="rm training", kind=RunKind.REWARD_MODEL,
                             status=RunStatus.SUCCEEDED)
    (run.checkpoint_dir / "reward-model").mkdir(parents=True)
    RewardModel.objects.create(project=project, name="helpful-rm", backbone="tiny", training_run=run,
                               path=str(run.checkpoint_dir / "reward-model"))
    log_in(page, live_server, user)
    page.goto(f"{live_server.url}/projects/{project.id}/reward-models/")
    page.click("a[aria-label='Delete reward model helpful-rm']")
    page.check("input[name=with_training_run]")
    page.click("button.danger")
    page.wait_for_url(f"{live_server.url}/projects/{project.id}/reward-models/")
    assert "Deleted reward model “helpful-rm” and its training run." in page.inner_text(".messages")
    assert not RewardModel.objects.exists() and not Run.objects.exists()
    assert not run.checkpoint_dir.exists()
