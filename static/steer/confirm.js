// A plain form with data-confirm="…" asks before it is sent (htmx forms use hx-confirm).
// Without this file the form is sent at once, as before: the server's checks still apply.
(function () {
  "use strict";
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
})();
