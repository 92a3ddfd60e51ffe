/* Steer annotation workspace: keyboard-first ranking, drag and drop, time spent, undo countdown.
   The form works without this file (plain POST); this only makes it faster. */
(function () {
  "use strict";

  var PAIR_KEYS = { "1": "a", a: "a", "2": "b", b: "b", "3": "tie", t: "tie", "4": "both_bad", x: "both_bad" };
  var STRENGTH_KEYS = { "5": "1", "6": "2", "7": "3", "0": "" };  /* how much better: slightly, better, much, not said */
  var shownAt = null;      // performance.now() when the current task became visible
  var spentMs = 0;         // visible time accumulated before the last pause
  var undoTimer = null;
  var swapped = false;     // the workspace in the page came from an htmx swap (not the page load)

  function workspace() { return document.getElementById("workspace"); }
  function labelForm() { return document.getElementById("label-form"); }
  function rankingList() { return document.getElementById("ranking"); }
  function items() { var list = rankingList(); return list ? Array.prototype.slice.call(list.children) : []; }
  function letter(li) { return li.querySelector("h3").textContent.trim(); }

  /* ---- screen readers: what an action did, said in a live region outside the swapped section ---- */
  function announce(text) {
    var status = document.getElementById("workspace-status");
    if (!status || !text) { return; }
    status.textContent = "";  // the same words again are still news
    setTimeout(function () { status.textContent = text; }, 50);
  }

  /* ---- time spent: only while the tab is visible ---- */
  var clockKey = null;     // the submission key of the form the clock runs for
  function startClock() {
    /* A refused submission comes back as the same form (same key): its time goes on counting
       rather than starting again, which recorded only the time since the error. */
    var form = labelForm();
    var key = form && form.elements.submission_key ? form.elements.submission_key.value : null;
    if (key !== null && key === clockKey) { return; }
    clockKey = key;
    spentMs = 0; shownAt = document.hidden ? null : performance.now();
  }
  function elapsed() { return spentMs + (shownAt === null ? 0 : performance.now() - shownAt); }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { if (shownAt !== null) { spentMs += performance.now() - shownAt; shownAt = null; } }
    else if (shownAt === null) { shownAt = performance.now(); }
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form && form.id === "label-form") {
      form.elements.time_spent_ms.value = String(Math.round(elapsed()));
    }
  }, true);

  /* ---- ranking: order and ties -> rank numbers (1 = best; equal numbers tie) ---- */
  function markRanked() {
    /* The annotator has ordered the list: the server refuses a ranking nobody touched. */
    var box = document.getElementById("ranked");
    if (box) { box.checked = true; }
  }

  function syncRanks() {
    var rank = 0;
    items().forEach(function (li, index) {
      var tied = index > 0 && li.dataset.tied === "1";
      if (index === 0) { li.dataset.tied = "0"; }
      if (!tied) { rank = index + 1; }
      li.classList.toggle("tied", tied);
      li.querySelector(".rank-input").value = String(rank);
      li.setAttribute("aria-label", "Completion " + letter(li) + ", rank " + rank + (tied ? ", tied with the one above" : ""));
    });
  }

  function readRanksIntoOrder() {
    /* Server-rendered rank numbers (e.g. after an error) decide the starting order and ties. */
    var list = rankingList();
    if (!list) { return; }
    var sorted = items().sort(function (x, y) {
      return Number(x.querySelector(".rank-input").value) - Number(y.querySelector(".rank-input").value);
    });
    var previous = null;
    sorted.forEach(function (li) {
      var rank = li.querySelector(".rank-input").value;
      li.dataset.tied = previous !== null && previous === rank ? "1" : "0";
      previous = rank;
      list.appendChild(li);
    });
    syncRanks();
  }

  function rankTyped(input) {
    /* A typed rank number moves its completion to where the number puts it (equal numbers tie), so
       the list, its tie marks and its spoken names say what will be saved, and a later move by
       keyboard or drag starts from it instead of renumbering the typed ranks away. A number out of
       range is left as typed, for the form to refuse. */
    var k = items().length;
    var valid = items().every(function (li) {
      var value = li.querySelector(".rank-input").value;
      return /^[0-9]+$/.test(value) && Number(value) >= 1 && Number(value) <= k;
    });
    if (!valid) { return; }
    var li = input.closest(".rank-item"), active = document.activeElement;
    readRanksIntoOrder();
    if (active && active !== document.activeElement && document.body.contains(active)) { active.focus(); }
    announce(li.getAttribute("aria-label") + ".");
  }

  function focusItem(index) {
    var all = items();
    if (!all.length) { return; }
    index = Math.max(0, Math.min(all.length - 1, index));
    all[index].focus();
  }

  function focusedIndex() { return items().indexOf(document.activeElement && document.activeElement.closest(".rank-item")); }

  function moveFocused(delta) {
    var all = items(), i = focusedIndex();
    if (i < 0) { return; }
    var j = i + delta;
    if (j < 0 || j >= all.length) { return; }
    var li = all[i], list = rankingList();
    if (delta < 0) { list.insertBefore(li, all[j]); } else { list.insertBefore(li, all[j].nextSibling); }
    li.dataset.tied = "0";
    syncRanks();
    markRanked();
    li.focus();
    announce(letter(li) + " moved to position " + (j + 1) + " of " + all.length + ".");
  }

  function toggleTie() {
    var all = items(), i = focusedIndex();
    if (i <= 0) { return; }
    all[i].dataset.tied = all[i].dataset.tied === "1" ? "0" : "1";
    syncRanks();
    markRanked();
    announce(all[i].dataset.tied === "1" ? letter(all[i]) + " tied with " + letter(all[i - 1]) + "."
                                         : letter(all[i]) + " no longer tied.");
  }

  /* ---- undo countdown ---- */
  function startUndoCountdown() {
    if (undoTimer) { clearInterval(undoTimer); undoTimer = null; }
    var form = document.querySelector("#workspace form.undo");
    if (!form) { return; }
    var left = Number(form.dataset.undoSeconds || 0);
    var label = form.querySelector(".undo-countdown");
    undoTimer = setInterval(function () {
      left -= 1;
      if (left <= 0 || !document.body.contains(form)) {
        clearInterval(undoTimer); undoTimer = null;
        if (document.body.contains(form)) {
          var hadFocus = form.contains(document.activeElement);
          form.remove();
          if (hadFocus) { focusAfterSwap(); }
        }
        return;
      }
      if (label) { label.textContent = left + " s"; }
    }, 1000);
  }

  /* ---- focus after a swap: the error, else the first completion of a ranking, else the task ---- */
  function focusAfterSwap() {
    var target = document.getElementById("workspace-error");
    if (!target && rankingList()) { focusItem(0); return; }
    target = target || document.getElementById("task-head") || document.getElementById("queue-empty-heading");
    if (target) { target.focus(); }
  }

  /* ---- setup, on first load and after every htmx swap ---- */
  function setup() {
    var ws = workspace();
    if (!ws || ws.dataset.ready === "1") { return; }
    ws.dataset.ready = "1";
    startClock();
    startUndoCountdown();
    var list = rankingList();
    if (list) {
      readRanksIntoOrder();
      list.classList.add("enhanced");
      list.addEventListener("change", function (event) {
        if (event.target.classList.contains("rank-input")) { markRanked(); rankTyped(event.target); }
      });
      if (window.Sortable) {
        window.Sortable.create(list, {
          animation: 120, forceFallback: true, fallbackTolerance: 3, draggable: ".rank-item",
          filter: "input, select, textarea, a", preventOnFilter: false,
          onEnd: function (event) { event.item.dataset.tied = "0"; syncRanks(); markRanked(); },
        });
      }
      if (!swapped) { focusItem(0); }
    }
    if (swapped) {
      focusAfterSwap();
      announce(ws.dataset.announce);
    }
  }
  document.addEventListener("DOMContentLoaded", setup);
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "workspace") {
      swapped = true;
      /* the page's flash messages told of what came before this task ("Task 4 already has the label
         it wants … here is your next task"); once the task is swapped they would stand beside a new
         refusal or over the next task as if about it */
      var flashed = document.querySelector(".messages");
      if (flashed) { flashed.remove(); }
    }
  });
  document.addEventListener("htmx:load", setup);
  if (document.readyState !== "loading") { setup(); }

  /* ---- keys ---- */
  function typing(target) {
    if (!target) { return false; }
    if (target.tagName === "INPUT") { return !/^(radio|checkbox|button|submit)$/.test(target.type); }
    return target.isContentEditable || /^(TEXTAREA|SELECT)$/.test(target.tagName);
  }

  function submit(form, button) {
    if (!form) { return; }
    if (form.requestSubmit) { form.requestSubmit(button || undefined); } else { (button || form).click(); }
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.metaKey) { return; }
    var form = labelForm();
    var target = event.target;
    if (event.key === "Enter" && event.ctrlKey && form && form.contains(target)) {
      event.preventDefault(); submit(form); return;
    }
    if (event.ctrlKey) { return; }
    if (typing(target)) {
      if (event.key === "Escape") { target.blur(); }
      return;
    }
    var key = event.key;
    var help = document.getElementById("keys-help");
    if (key === "?") { if (help) { help.open = !help.open; } event.preventDefault(); return; }
    if (key === "u") {
      var undo = document.getElementById("undo-button");
      if (undo) { event.preventDefault(); submit(undo.form, undo); }
      return;
    }
    if (!form) { return; }
    if (key === "Enter" && !target.closest("button, a, summary")) {  /* those do their own thing */
      event.preventDefault(); submit(form, document.getElementById("submit-button")); return;
    }
    if (key === "s") { event.preventDefault(); document.getElementById("skip-button").click(); return; }
    if (!rankingList()) {
      var choice = PAIR_KEYS[key.toLowerCase()];
      var strength = STRENGTH_KEYS[key];
      var radio = choice ? form.querySelector('input[name="choice"][value="' + choice + '"]')
        : strength !== undefined ? form.querySelector('input[name="strength"][value="' + strength + '"]') : null;
      if (radio) { event.preventDefault(); radio.checked = true; }
      return;
    }
    var i = focusedIndex();
    var scrolling = !event.shiftKey && target.classList.contains("candidate-text");  /* arrows scroll a long text */
    if ((key === "ArrowDown" || key === "ArrowUp") && scrolling) { return; }
    if (key === "ArrowDown" || key === "j" || key === "J") {
      event.preventDefault();
      if (event.shiftKey || key === "J") { moveFocused(1); } else { focusItem(i + 1); }
    } else if (key === "ArrowUp" || key === "k" || key === "K") {
      event.preventDefault();
      if (event.shiftKey || key === "K") { moveFocused(-1); } else { focusItem(i < 0 ? 0 : i - 1); }
    } else if (key === "=") {
      event.preventDefault(); toggleTie();
    }
  });
})();
