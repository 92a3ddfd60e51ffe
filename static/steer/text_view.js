/* Model text (prompts, completions): raw, exactly as written, unless the annotator switches this
   page to rendered Markdown. The server sends both copies ({% model_text %}), the rendered one
   hidden; the choice is remembered per project in localStorage. Without this file text stays raw. */
(function () {
  "use strict";

  var RAW = "raw", RENDERED = "rendered";

  function toggle() { return document.querySelector(".text-view[data-text-view-key]"); }

  function stored(key) {
    try { return window.localStorage.getItem(key) === RENDERED ? RENDERED : RAW; } catch (e) { return RAW; }
  }

  function store(key, mode) {
    try { window.localStorage.setItem(key, mode); } catch (e) { /* private mode: this page only */ }
  }

  function apply(mode) {
    document.querySelectorAll(".text-raw").forEach(function (el) { el.hidden = mode === RENDERED; });
    document.querySelectorAll(".text-rendered").forEach(function (el) { el.hidden = mode !== RENDERED; });
    document.querySelectorAll(".text-view [data-text-view]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.dataset.textView === mode));
    });
    document.querySelectorAll(".text-view").forEach(function (group) { group.dataset.mode = mode; });
  }

  function choose(mode) {
    var group = toggle();
    if (!group) { return; }
    store(group.dataset.textViewKey, mode);
    apply(mode);
  }

  function setup() {
    var group = toggle();
    if (!group) { return; }
    group.hidden = false;
    apply(stored(group.dataset.textViewKey));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".text-view [data-text-view]");
    if (button) { choose(button.dataset.textView); }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "m" || event.altKey || event.metaKey || event.ctrlKey) { return; }
    var target = event.target;
    if (target && (target.isContentEditable || /^(TEXTAREA|SELECT)$/.test(target.tagName) ||
        (target.tagName === "INPUT" && !/^(radio|checkbox|button|submit)$/.test(target.type)))) { return; }
    var group = toggle();
    if (!group) { return; }
    event.preventDefault();
    choose(group.dataset.mode === RENDERED ? RAW : RENDERED);
  });

  document.addEventListener("DOMContentLoaded", setup);
  document.addEventListener("htmx:load", setup);
  if (document.readyState !== "loading") { setup(); }
})();
