"""Rules that fix what the canonical article text may contain, applied before it is cleaned and stored.

Hand-written because they are about this service's own contract (what a citation looks like, what SQLite's
substr can index), not about any general format a library knows. Every pattern here is linear-time.
"""

from __future__ import annotations

import re
import unicodedata

from qa.errors import BadDocument

# C0 controls other than tab, newline and carriage return (NUL is refused before this), and DEL.
_CONTROLS = re.compile(r"[\x01-\x08\x0e-\x1f\x7f]")
_LINE_BREAKING_CONTROLS = re.compile(r"[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# A bracket pair holding only digits (any script), spaces and list punctuation: "[2]", "[ 3 ]", "[1, 4]",
# "[٣]", "[12-14]". Bounded inside ({0,40}), so each "[" costs at most 40 steps: linear in the text.
_BRACKETED_NUMBER = re.compile(r"\[([\s\d,;–—-]{0,40})\]")


def refuse_nul(name: str, data: bytes) -> None:
    """NUL anywhere is refused: SQLite's substr stops at it, so the text after it could never be cited."""
    at = data.find(b"\x00")
    if at == -1:
        return
    if at < 8192:
        raise BadDocument(name, "file looks binary (contains NUL bytes)")
    raise BadDocument(name, f"contains a NUL byte at byte {at} (binary or UTF-16 content; save it as UTF-8 text)")


def normalise(text: str) -> str:
    """NFC, with C0 control characters dropped (line-breaking ones become newlines), before cleaning fixes
    the canonical text: offsets are then taken in what GET /documents/{id} returns."""
    text = unicodedata.normalize("NFC", text)
    text = _LINE_BREAKING_CONTROLS.sub("\n", text)
    return _CONTROLS.sub("", text)


def _as_parentheses(match: re.Match[str]) -> str:
    inner = match.group(1)
    if not any(ch.isdigit() for ch in inner):
        return match.group(0)
    return f"({inner})"


def neutralise_citations(text: str) -> str:
    """Article text never carries something that reads as a citation: "[3]" becomes "(3)". The same length,
    so offsets computed on either form index the other; applied at ingest and again wherever article text is
    quoted (answers, streams, LLM prompts), so text indexed before this rule existed is safe too."""
    if "[" not in text:
        return text
    return _BRACKETED_NUMBER.sub(_as_parentheses, text)
