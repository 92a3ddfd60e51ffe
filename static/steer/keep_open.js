// A <details id=... data-keep-open> that an htmx poll replaces stays as the user left it:
// open if they opened it, closed if they closed it (a run's checkpoint list closed itself
// with every status poll). Until the user toggles it, the server's choice stands.
(function () {
  "use strict";
  const chosen = new Map();

  document.addEventListener("click", (event) => {
    const summary = event.target.closest("details[data-keep-open][id] > summary");
    if (summary) {
      const details = summary.parentElement;
      chosen.set(details.id, !details.open);  // the click is about to flip it
    }
  });

  document.addEventListener("htmx:afterSettle", () => {
    chosen.forEach((open, id) => {
      const el = document.getElementById(id);
      if (el) el.open = open;
    });
  });
})();
