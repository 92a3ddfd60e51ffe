"""Logging in through the login page, as a user does, and crawling a member's pages by their links."""

import re
from collections import deque

from tests.factories import PASSWORD

# never followed by a crawl: links that change something (a GET page of a confirm form is harmless,
# but a crawl has no business there) and file downloads (JSONL, by name or by the download attribute)
_NOT_CRAWLED = re.compile(r"/(logout|delete|remove|revoke)|\.jsonl")


def log_in(page, live_server, user=None, *, username: str | None = None, password: str = PASSWORD) -> None:
    """Log in as ``user`` (made by the factories), or by ``username`` and ``password``."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username or user.username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/projects/**")


def crawl_links(page, live_server, start: list[str], allowed: re.Pattern, visit, limit: int = 120) -> set[str]:
    """Open every same-site page reachable by links from ``start`` whose path matches ``allowed``;
    ``visit(path, response)`` looks at each HTML page and says whether to follow its links. The paths opened."""
    seen, queue = set(), deque(start)
    while queue and len(seen) < limit:
        path = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        response = page.goto(f"{live_server.url}{path}", wait_until="load")
        if response is None or "html" not in response.headers.get("content-type", ""):
            continue
        if not visit(path, response):
            continue
        for href in page.eval_on_selector_all("a[href]:not([download])", "els => els.map(a => a.href)"):
            rest = href[len(live_server.url):].split("#")[0] if href.startswith(live_server.url) else ""
            if allowed.match(rest) and rest not in seen and not _NOT_CRAWLED.search(rest):
                queue.append(rest)
    return seen
