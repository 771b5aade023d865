"""Which language a question is written in (lingua-language-detector): the embedder (MiniLM) and every
answering rule understand English only, so a question in another language is told so instead of getting a
wrong answer or a "the articles don't say"."""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any

# The languages lingua tells apart here: English and the languages a reader of English news most often
# writes in. Fewer languages and the low-accuracy (trigram) models keep it small; it loads only when a
# question is not plainly English.
LANGUAGES = ("ENGLISH", "FRENCH", "GERMAN", "SPANISH", "PORTUGUESE", "ITALIAN", "DUTCH", "RUSSIAN", "UKRAINIAN",
             "POLISH", "TURKISH", "ARABIC", "PERSIAN", "HEBREW", "HINDI", "CHINESE", "JAPANESE", "KOREAN")
ENGLISH_WORDS = frozenset(
    w for line in (Path(__file__).parent / "english_words.txt").read_text("utf-8").splitlines()
    if not line.startswith("#") for w in line.split()
)
MIN_WORDS = 3  # a Latin-script text with fewer words (names aside) is too short to tell: taken as English
_WORD = re.compile(r"\w+")
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _detector() -> Any:
    from lingua import Language, LanguageDetectorBuilder

    languages = (getattr(Language, n) for n in LANGUAGES)
    return LanguageDetectorBuilder.from_languages(*languages).with_low_accuracy_mode().build()


def non_latin_share(text: str) -> float:
    """The share of letters outside the Latin script (Cyrillic, CJK, Arabic ...)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for ch in letters if not unicodedata.name(ch, "LATIN").startswith("LATIN")) / len(letters)


def _detect(text: str) -> str | None:
    with _lock:  # built once, shared by threads
        detector = _detector()
    found = detector.detect_language_of(text)
    return None if found is None else found.name.capitalize()


def language_of(text: str) -> str | None:
    """The language a text is written in ("Russian"), or None when it is English or too short to tell.

    A text mostly in another script is not English whatever names it holds. A Latin-script text is English
    when two of its words are English function words ("Did Ana Ferreira meet Omar Haddad?"); otherwise
    lingua decides on its words other than capitalised ones (names are no evidence of a language).
    """
    if non_latin_share(text) > 0.5:
        return _detect(text) or "an unknown language"
    words = _WORD.findall(text)
    if sum(1 for w in words if w.lower() in ENGLISH_WORDS) >= 2:
        return None
    plain = [w for i, w in enumerate(words) if i == 0 or not w[:1].isupper()]
    if len(plain) < MIN_WORDS:
        return None
    found = _detect(" ".join(plain))
    return None if found in (None, "English") else found
