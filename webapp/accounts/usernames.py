"""Usernames people cannot tell apart.

A username is shown on the Members page, beside every label and in exports: an account named
"аlice" (Cyrillic а), "Alice" or "ａｌｉｃｅ" (fullwidth) beside "alice" would pass for her. So a
new name is compared with the existing ones twice: folded (NFKC, then case folded: "Alice",
"ａｌｉｃｅ") and by its *skeleton*, where the Cyrillic and Greek letters (and the digits) that
look like Latin ones are replaced by those (after Unicode's confusables, UTS #39, cut down to
the letters a username can hold). No library for the full table is installed; the common
look-alikes of Latin letters are listed here.
"""

import unicodedata

from webapp.core.names import BLANK_GLYPHS

# Look-alikes of Latin letters, by the letter they pass for. Capitals are mapped before case
# folding: Greek Ν looks like N, but folds to ν, which looks like v.
_LOOK_ALIKES = {
    "a": "аɑα", "b": "Ьь", "c": "сϲ", "d": "ԁ", "e": "еҽ", "g": "ɡ", "h": "һ", "i": "іιı", "j": "јϳ",
    "k": "κ", "l": "1ӏ", "n": "η", "o": "оο0σ", "p": "рρ", "q": "ԛ", "r": "г", "s": "ѕ", "t": "τ",
    "u": "υ", "v": "νѵ", "w": "ԝѡω", "x": "хχ", "y": "уγ",
    "A": "АΑ", "B": "ВΒ", "C": "СϹ", "E": "ЕΕ", "H": "НΗ", "I": "ІΙӀ", "J": "Ј", "K": "КΚ",
    "M": "МΜ", "N": "Ν", "O": "ОΟ", "P": "РΡ", "Q": "Ԛ", "S": "Ѕ", "T": "ТΤ", "W": "Ԝ",
    "X": "ХΧ", "Y": "УΥ", "Z": "Ζ",
}
SKELETON = str.maketrans({c: latin for latin, chars in _LOOK_ALIKES.items() for c in chars})
# "I" and "l" are one stroke in most sans-serif fonts, and "I" is also "i" in capitals: a name
# has two skeletons, and two names clash when they share one.
CAPITAL_I_AS_L = str.maketrans({"I": "l", "Ι": "l", "І": "l", "Ӏ": "l"})

# Letters (category Lo, so Django's username validator takes them) that draw nothing: the
# Hangul fillers, as for every other name (webapp.core.names).
_BLANK_LETTERS = BLANK_GLYPHS
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Zs", "Zl", "Zp"})


def username_folded(username: str) -> str:
    """As Django's login compares names: NFKC, then case folded."""
    return unicodedata.normalize("NFKC", username).casefold()


def username_skeletons(username: str) -> frozenset[str]:
    """The name as it looks: look-alike letters replaced by the Latin ones, then case folded
    (and mapped again, for letters that only folding produces); once reading a capital I as
    an i, once as an l."""
    name = unicodedata.normalize("NFKC", username)
    return frozenset(variant.translate(SKELETON).casefold().translate(SKELETON)
                     for variant in (name, name.translate(CAPITAL_I_AS_L)))


def username_invisible(username: str) -> str | None:
    """The first character of ``username`` that shows nothing on the page (a format or control
    character, a space, a Hangul filler), or None."""
    for char in username:
        if char in _BLANK_LETTERS or unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            return char
    return None
