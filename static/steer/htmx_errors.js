// What htmx leaves unsaid: it swaps nothing when a request fails (an error status, or no
// connection), so without this a refused submit looked like a button that did nothing. A
// banner says what happened; the page, and whatever was typed into it, stays as it was.
(function () {
  "use strict";

  function banner() {
    let el = document.getElementById("request-error");
    if (!el) {
      el = document.createElement("div");
      el.id = "request-error";
      el.className = "request-error";
      el.setAttribute("role", "alert");
      document.body.prepend(el);
    }
    return el;
  }

  function show(text) {
    banner().textContent = text;  // text, never markup
    banner().hidden = false;
  }

  function explain(status) {
    if (status === 403) return "The server refused this (403). If the page is old or you logged in again elsewhere, reload it and try again.";
    if (status === 404) return "That is no longer there (404). Reload the page.";
    if (status === 429) return "Too many requests (429). Wait a moment and try again.";
    if (status >= 500) return "The server failed (HTTP " + status + "). Nothing on this page was lost; try again.";
    return "The request failed (HTTP " + status + ").";
  }

  document.addEventListener("htmx:responseError", (event) => show(explain(event.detail.xhr.status)));
  document.addEventListener("htmx:sendError", () =>
    show("The server could not be reached. Nothing on this page was lost; try again when it is back."));
  document.addEventListener("htmx:afterRequest", (event) => {
    const el = document.getElementById("request-error");
    if (el && event.detail.successful) el.hidden = true;
  });
})();
