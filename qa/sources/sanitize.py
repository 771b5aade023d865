"""Rules that fix what the canonical article text may contain, applied before it is cleaned and stored.

Hand-written because they are about this service's own contract (what a citation looks like, what SQLite's
substr can index), not about any general format a library knows. Every pattern here is linear-time.
"""

from __future__ import annotations

import re
import unicodedata

from qa.errors import BadDocument
from qa.lexicon import neutralise_citations

__all__ = ["META_MAX_CHARS", "URL_MAX_CHARS", "neutralise_citations", "normalise", "one_line", "refuse_nul"]

# C0 controls other than tab, newline and carriage return (NUL is refused before this), and DEL.
_CONTROLS = re.compile(r"[\x01-\x08\x0e-\x1b\x7f]")
# Vertical tab and form feed (a manual line break, a page end in exported text) and the separators: a space,
# so "retired after\x0b 41 years" stays one sentence.
_SPACING_CONTROLS = re.compile(r"[\x0b\x0c\x1c-\x1f\x85]")
# Bidirectional controls (embeddings, overrides, isolates, marks): in a one-line field they only serve to make
# an outlet or author read as something else ("Times" shown as "semiT").
_BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
META_MAX_CHARS = 200  # an outlet or author name is shown in every citation: longer is not a name
URL_MAX_CHARS = 2000



def refuse_nul(name: str, data: bytes) -> None:
    """NUL anywhere is refused: SQLite's substr stops at it, so the text after it could never be cited."""
    at = data.find(b"\x00")
    if at == -1:
        return
    if at < 8192:
        raise BadDocument(name, "file looks binary (contains NUL bytes)")
    raise BadDocument(name, f"contains a NUL byte at byte {at} (binary or UTF-16 content; save it as UTF-8 text)")


def normalise(text: str) -> str:
    """NFC, with C0 control characters dropped (spacing ones become spaces), before cleaning fixes the
    canonical text: offsets are then taken in what GET /documents/{id} returns."""
    text = unicodedata.normalize("NFC", text)
    text = _SPACING_CONTROLS.sub(" ", text)
    return _CONTROLS.sub("", text)


def one_line(value: object, max_chars: int = META_MAX_CHARS) -> str:
    """A metadata string (title, outlet, author, feed title) as it may be quoted into answers and prompts: one
    line (NFC, controls and bidi controls gone, whitespace collapsed), no bracketed number that could pass for a
    citation, and at most `max_chars` characters (cut at a word, with an ellipsis)."""
    text = " ".join(_BIDI.sub("", normalise(str(value or "").replace("\x00", ""))).split())
    text = neutralise_citations(text)
    if len(text) > max_chars:
        cut = text[: max_chars - 1]
        text = (cut.rsplit(" ", 1)[0] if " " in cut[max_chars // 2 :] else cut).rstrip() + "…"
    return text
