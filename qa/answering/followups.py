"""Suggested follow-up questions, made offline from the articles an answer cites: questions that OTHER
sentences of the cited passages answer (who said what, how many of something, what the article reported),
built from their names, figures and headline with fixed templates; no language model. Each suggestion is kept
only when `answerable` says the index would find its source passage for it (the service checks the keyword
index: a few milliseconds), so a suggestion is not a dead end."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from qa.lexicon import CALENDAR_WORDS, IRREGULAR_PAST, NAME_MODIFIERS, PERSON_TITLES, SENTENCE_OPENERS, words

if TYPE_CHECKING:
    from qa.answering import Answer
    from qa.retrieval import Passage

LIMIT = 3  # suggestions under an answer
_WORD = r"[A-Z][\w’'-]*[\w]"
_NAME = rf"(?:{_WORD}\s+){{0,4}}{_WORD}"  # a run of capitalised words
_SPEECH_VERBS = r"said|says|told|stated|noted|warned|added|stressed|insisted|announced|argued|claimed"
# "Dmitry Peskov, said", "the Foreign Ministry said", "Lavrov also told"
_SPEAKER_BEFORE = re.compile(rf"(?P<the>\bthe\s+)?(?P<name>{_NAME}),?\s+(?:also\s+|later\s+)?(?:{_SPEECH_VERBS})\b")
_SPEAKER_AFTER = re.compile(rf"\b(?:said|says|according to)\s+(?P<the>the\s+)?(?P<name>{_NAME})")
_QUALIFIER = r"(?:(?:at least|more than|fewer than|less than|about|around|some|nearly|almost|over|up to)\s+)?"
_COUNT = r"(?:\d[\d,]*|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens of|hundreds of|thousands of)"
_THINGS = r"(?P<things>(?:[\w-]+\s+){0,2}(?:[a-z]+s|people))"
# "59 Tomahawk cruise missiles were fired", "12 people have been killed"
_PASSIVE = re.compile(rf"\b{_QUALIFIER}{_COUNT}\s+{_THINGS}\s+(?P<aux>were|have been|had been|are|was)\s+"
                      r"(?P<verb>[a-z]+)\b")
# "the US fired at least 59 Tomahawk cruise missiles"
_ACTIVE = re.compile(rf"(?P<the>\bthe\s+)?(?P<name>{_NAME})\s+(?P<verb>[a-z]+)\s+{_QUALIFIER}{_COUNT}\s+{_THINGS}\b")
_NOT_THINGS = words("years months weeks days hours minutes seconds times percent dollars euros pounds")
_PARTICIPLES = {past: forms.split()[-1] for forms in IRREGULAR_PAST.values() for past in forms.split()[:1]}
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"”’)]?\s+(?=[\"“‘(]?[A-Z0-9])|\n\s*\n")
_DEMONYM = re.compile(r"(?:ian|ean|ese|ish)$")
_NOT_SPEAKERS = frozenset({"he", "she", "they", "it", "we", "i", "you", "this", "that", "there"})

Answerable = Callable[[str, "Passage"], bool]


def _speaker(name: str) -> tuple[str, bool] | None:
    """A speaker's name as a question may use it, and whether it takes "the": titles and what stands before them
    dropped ("Russian Foreign Minister Sergey Lavrov" -> "Sergey Lavrov"), a body kept whole ("The US Embassy"
    -> "the US Embassy"); None for a pronoun, a day or a lone word that opens sentences."""
    words = name.split()
    the = bool(words) and words[0].lower() == "the"
    if the:
        words = words[1:]
    titles = [i for i, w in enumerate(words) if w.lower() in PERSON_TITLES]
    if titles and titles[-1] < len(words) - 1:
        words, the = words[titles[-1] + 1:], False
        while len(words) > 2 and words[0].lower() in NAME_MODIFIERS:
            words = words[1:]
    if not words or words[0].lower() in _NOT_SPEAKERS | SENTENCE_OPENERS | CALENDAR_WORDS:
        return None
    return " ".join(words[-3:]), the


def _topic(name: str, speaker: str) -> bool:
    """Whether a name after the speech verb is something the speaker spoke about (not a day, not a lone
    adjective of nationality, not the speaker)."""
    first = name.split()[0].lower()
    if first in SENTENCE_OPENERS | CALENDAR_WORDS or speaker in name or name in speaker:
        return False
    return len(name.split()) > 1 or not _DEMONYM.search(first)


def _participle(verb: str) -> str | None:
    """The past participle of a past-tense verb ("fired" -> "fired", "took" -> "taken"); None if it is not one."""
    if verb in _PARTICIPLES:
        return _PARTICIPLES[verb]
    return verb if verb.endswith("ed") and len(verb) > 4 else None


def _things(text: str) -> str | None:
    words = text.split()
    while words and words[0].lower() in SENTENCE_OPENERS:  # "59 of the missiles" is not a thing counted
        words = words[1:]
    return " ".join(words) if words and words[-1].lower() not in _NOT_THINGS else None


def _from_sentence(sentence: str) -> Iterator[str]:
    """Questions the sentence answers, best first."""
    for pattern in (_SPEAKER_BEFORE, _SPEAKER_AFTER):
        for match in pattern.finditer(sentence):
            found = _speaker(match["name"])
            if found is None:
                continue
            speaker, the = found
            who = f"the {speaker}" if the or match["the"] else speaker
            others = [n for n in re.findall(_NAME, sentence[match.end():]) if _topic(n, speaker)]
            yield f"What did {who} say about {others[0]}?" if others else f"What did {who} say?"
    for match in _PASSIVE.finditer(sentence):
        things = _things(match["things"])
        if things and _participle(match["verb"]):
            yield f"How many {things} {match['aux']} {match['verb']}?"
    for match in _ACTIVE.finditer(sentence):
        things, participle, found = _things(match["things"]), _participle(match["verb"]), _speaker(match["name"])
        if things and participle and found:
            who = f"the {found[0]}" if found[1] or match["the"] else found[0]
            yield f"How many {things} were {participle} by {who}?"


def _sentences(passage: Passage) -> list[str]:
    """The passage's sentences: the spans retrieval handed over (punkt, at ingest), else a plain split (no
    tokenizer is loaded for this: it would cost seconds on a cold start)."""
    if passage.sentences:
        texts = [passage.text[span.start - passage.start : span.end - passage.start] for span in passage.sentences]
    else:
        texts = _SENTENCE_END.split(passage.text)
    return [t.strip() for t in texts if len(t.split()) >= 4]


def _headline(passage: Passage) -> str | None:
    title = " ".join(passage.title.split()).rstrip(".!:;,")
    if len(title.split()) < 4:
        return None
    if title.endswith("?"):
        return title
    return f"What did {passage.source} report about “{title}”?" if passage.source else f"What happened: “{title}”?"


def suggest(question: str, answer: Answer, answerable: Answerable, limit: int = LIMIT) -> list[str]:
    """Up to `limit` follow-up questions from the cited passages' other sentences (then their headlines), each
    kept only when `answerable(suggestion, passage)`; none for a refusal."""
    if answer.refused or not answer.citations:
        return []
    quoted = [c.quote.text for c in answer.citations if c.quote] + [answer.text]
    asked = {question.casefold().strip()}
    passages: list[Passage] = []
    for citation in answer.citations:
        if all(p.chunk_id != citation.passage.chunk_id for p in passages):
            passages.append(citation.passage)
    picked: list[str] = []

    def consider(candidate: str, passage: Passage) -> bool:
        key = candidate.casefold()
        if key in asked or len(candidate) > 200:
            return False
        asked.add(key)
        if answerable(candidate, passage):
            picked.append(candidate)
        return len(picked) >= limit

    for passage in passages:
        for sentence in _sentences(passage):
            if any(sentence in q or q in sentence for q in quoted if q):
                continue  # the answer already says it
            for candidate in _from_sentence(sentence):
                if consider(candidate, passage):
                    return picked
                break  # one question per sentence: the suggestions stay varied
    seen_docs: set[str] = set()
    for passage in passages:
        headline = _headline(passage)
        if passage.doc_id in seen_docs or headline is None:
            continue
        seen_docs.add(passage.doc_id)
        if consider(headline, passage):
            break
    return picked
