"""Names people give things: projects, runs, datasets, rubrics, policies, pair sets, tokens.

A name is shown in lists, pickers, breadcrumbs and exports, and people tell things apart by
it, so it must be something a reader can see and read in one direction:

* at least one letter, digit, punctuation mark or symbol that draws something (a name of
  zero-width spaces, word joiners, combining marks or Hangul fillers alone looks empty on
  every page);
* no control characters (newlines, tabs, NUL: a name is one line);
* no bidirectional overrides or isolates (U+202A–U+202E, U+2066–U+2069), which make a name
  display in an order other than the one it is stored in (CVE-2021-42574, "Trojan Source").

Zero-width and other format characters at either end are trimmed with the whitespace.
"""

import unicodedata

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
VISIBLE_CATEGORIES = ("L", "N", "P", "S")  # letters, numbers, punctuation, symbols
# Letters and symbols by their category that draw nothing: the Hangul fillers and the blank
# Braille pattern (the usual "invisible name" characters where zero-width ones are refused).
BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
CONTROL_NAMES = {"\x00": "NUL", "\t": "tab", "\n": "line feed", "\r": "carriage return"}


def name_strip(raw: str | None) -> str:
    """``raw`` without whitespace or format characters (zero-width space, BOM …) at either end."""
    text = raw or ""
    start, end = 0, len(text)
    while start < end and _blank(text[start]):
        start += 1
    while end > start and _blank(text[end - 1]):
        end -= 1
    return text[start:end]


def name_problem(name: str) -> str | None:
    """Why ``name`` (already stripped) cannot be a name, or None when it can."""
    for ch in name:
        if ch in BIDI_CONTROLS:
            return f"holds a text-direction control ({_codepoint(ch)}), which makes it display out of order"
        if unicodedata.category(ch) == "Cc":
            named = f" {CONTROL_NAMES[ch]}" if ch in CONTROL_NAMES else ""
            return f"holds a control character ({_codepoint(ch)}{named}); a name is one line of text"
    if name and not any(unicodedata.category(ch)[0] in VISIBLE_CATEGORIES and ch not in BLANK_GLYPHS for ch in name):
        return "has no visible character (only spaces, zero-width or combining characters)"
    return None


def _blank(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) == "Cf"


def _codepoint(ch: str) -> str:
    return f"U+{ord(ch):04X}"
