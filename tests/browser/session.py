"""Logging in through the login page, as a user does."""

from tests.factories import PASSWORD


def log_in(page, live_server, user=None, *, username: str | None = None, password: str = PASSWORD) -> None:
    """Log in as ``user`` (made by the factories), or by ``username`` and ``password``."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username or user.username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/projects/**")
