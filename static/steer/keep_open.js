// A <details id=... data-keep-open> that an htmx poll replaces stays as the user left it:
// open if they opened it, closed if they closed it (a run's checkpoint list closed itself
// with every status poll). Until the user toggles it, the server's choice stands.
// A <select> whose options a poll refreshes in place (hx-swap-oob="innerHTML", so that an open
// list stays open: the trajectories' step picker) shows the option the server marked selected:
// options moved in from a parsed fragment carry a selectedness of their own (the last one's).
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

  document.addEventListener("htmx:oobAfterSwap", (event) => {
    const select = event.detail && event.detail.target;
    if (!(select instanceof HTMLSelectElement)) return;
    const marked = Array.from(select.options).findIndex((option) => option.defaultSelected);
    select.selectedIndex = marked < 0 ? 0 : marked;
  });
})();
