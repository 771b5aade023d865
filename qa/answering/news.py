"""News over time: which of several reports of one thing an answer leads with (the latest, a correction),
which values the sources disagree on, and how yes/no, why and multi-part questions are answered.

Shared by the extractive answerer (which composes its answer with it) and the LLM answerer (which fills
`disagreements` from the passages it cited). The language rules (cue words, patterns) live in qa.lexicon;
dates in article text are resolved by dateparser against the article's own publication date, so "on
Saturday" in a Monday paper and "on Sunday" in a Wednesday paper are compared as calendar days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from qa.answering import Disagreement, DisagreementValue
from qa.answering.answer_types import AnswerType, satisfies, without_reporting_days
from qa.answering.enrichments import sentence_spans
from qa.lexicon import (
    CORRECTION_PATTERN,
    CURRENT_STATE_PATTERN,
    DATE_PATTERN,
    DESCRIBER_PATTERNS,
    DESCRIPTION_Q_PATTERN,
    MONTH_WORD_PATTERN,
    NEGATION_PATTERN,
    OPPOSITE_STATES,
    PART_OPENERS,
    PART_SPLIT_PATTERN,
    PRONOUN_SPEAKER_PATTERN,
    QUESTION_OPENING_PATTERN,
    SPEECH_VERB_PATTERN,
    STRONG_DESCRIPTION_PATTERN,
    STRONG_REASON_PATTERN,
    TIME_ADVERBS,
    TIME_PATTERN,
    UNCERTAIN_PATTERN,
    WEAK_DESCRIPTION_PATTERN,
    WEAK_REASON_PATTERN,
    WEEKDAY_PATTERN,
    WHAT_ABOUT_PATTERN,
    WHY_PATTERN,
    YES_NO_PATTERN,
    Gazetteer,
    Kind,
    parse_date,
    question_words,
    terms,
)
from qa.retrieval import Passage
from qa.text.figures import figures

_YES_NO = re.compile(YES_NO_PATTERN, re.I)
_WHY = re.compile(WHY_PATTERN, re.I)
_DESCRIPTION_Q = re.compile(DESCRIPTION_Q_PATTERN, re.I)
_DESCRIBERS = (re.compile(DESCRIBER_PATTERNS[0], re.I), re.compile(DESCRIBER_PATTERNS[1]))  # "by X": X capitalised
_STRONG_DESCRIPTION = re.compile(STRONG_DESCRIPTION_PATTERN, re.I)
_WEAK_DESCRIPTION = re.compile(WEAK_DESCRIPTION_PATTERN, re.I)
_SPEECH_VERB = re.compile(SPEECH_VERB_PATTERN, re.I)
_PRONOUN_SPEAKER = re.compile(PRONOUN_SPEAKER_PATTERN, re.I)
SPEAKER_WINDOW = 6  # words between a speaker's name and the verb of saying ("Foreign Minister Sergey Lavrov said")
_STRONG_REASON = re.compile(STRONG_REASON_PATTERN, re.I)
_WEAK_REASON = re.compile(WEAK_REASON_PATTERN, re.I)
_CURRENT = re.compile(CURRENT_STATE_PATTERN, re.I)
_CORRECTION = re.compile(CORRECTION_PATTERN, re.I)
_UNCERTAIN = re.compile(UNCERTAIN_PATTERN, re.I)
_NEGATION = re.compile(NEGATION_PATTERN, re.I)
_PART_SPLIT = re.compile(PART_SPLIT_PATTERN, re.I)
_WHAT_ABOUT = re.compile(WHAT_ABOUT_PATTERN, re.I)
_OPENING = re.compile(QUESTION_OPENING_PATTERN, re.I)
_PART_OPENER = re.compile(rf"^\W*(?:{'|'.join(sorted(PART_OPENERS))})\b", re.I)
_TIME = re.compile(TIME_PATTERN, re.I)
_DAY_MENTION = re.compile(rf"\b(?:{DATE_PATTERN}|{MONTH_WORD_PATTERN} \d{{1,2}}\b|\d{{1,2}} {MONTH_WORD_PATTERN}|"
                          rf"{WEEKDAY_PATTERN}|yesterday|today)")
_CURRENCY = re.compile(r"[$€£]|euro|dollar|pound|million|billion", re.I)


# ---- question forms -----------------------------------------------------------------------------------------

def question_form(question: str) -> str:
    """"yes-no", "why", "description" ("How did X describe Y?") or "other", read from how the question opens."""
    if _WHY.search(question):
        return "why"
    if _YES_NO.search(question):
        return "yes-no"
    if _DESCRIPTION_Q.search(question):
        return "description"
    return "other"


def describer_terms(question: str) -> set[str]:
    """The terms of whoever a description question asks the description of ("How did *Lavrov* characterise
    ...", "described by *Lavrov*"); empty when it names no one ("How was the tone described?")."""
    for pattern in _DESCRIBERS:
        match = pattern.search(question)
        if match:
            return set(terms(match.group("who"))) - set(terms(" ".join(TIME_ADVERBS)))
    return set()


def description_strength(sentence: str) -> int:
    """2 when a sentence describes with a verb of describing ("called it an “unlawful attack”", "turned out to be
    frank"), 1 for a copula with an evaluation ("is not calm"), else 0."""
    if _STRONG_DESCRIPTION.search(sentence):
        return 2
    return 1 if _WEAK_DESCRIPTION.search(sentence) else 0


def said_by(speaker: set[str], sentence: str, previous: str) -> bool:
    """Whether the sentence is what `speaker` says: one of its terms stands within a few words of a verb of
    saying ("Lavrov said", "seen by Democrats"; not a possessive: "Putin’s spokesperson said"), or the
    sentence's speaker is a pronoun ("He also called it") and the sentence before names the speaker."""
    tokens = re.findall(r"[\w’'-]+", sentence)
    verbs = [i for i, t in enumerate(tokens) if _SPEECH_VERB.fullmatch(t)]
    verbs += [i for i in range(len(tokens) - 1) if _SPEECH_VERB.fullmatch(f"{tokens[i]} {tokens[i + 1]}")]
    for i, token in enumerate(tokens):
        if token.endswith(("’s", "'s")):
            continue  # "Putin’s spokesperson said": the spokesperson speaks
        stem = terms(token)
        if stem and stem[0] in speaker and any(abs(i - v) <= SPEAKER_WINDOW for v in verbs):
            return True
    return bool(_PRONOUN_SPEAKER.search(sentence)) and bool(speaker & set(terms(previous)))


def asks_latest(question: str) -> bool:
    """Whether the answer may change from one report to the next (a toll, a state now, whether X happened):
    then the latest report leads and an earlier differing one is shown as earlier."""
    return question_form(question) == "yes-no" or bool(_CURRENT.search(question))


def split_parts(question: str) -> list[str]:
    """A question with several parts, one question each ("How many died, and has the port reopened?")."""
    parts = [p.strip(" ,;") for p in _PART_SPLIT.split(question.strip())]
    whole = len(parts) > 1 and all(len(p.split()) >= 3 and _PART_OPENER.match(p) for p in parts)
    return parts if whole else [question.strip()]  # "According to Tillerson, who ...?" is one question


def resolve_what_about(question: str) -> str:
    """The question actually asked by "What about X?" at the end of a standalone question: the previous
    question's opening with X ("How many homes did the fire destroy? What about residents?" -> "How many
    residents?"). Any other question is returned as its last sentence."""
    sentences = [s for s in re.split(r"(?<=[?.!])\s+", question.strip()) if s]
    asked = sentences[-1] if sentences else question
    match = _WHAT_ABOUT.match(asked)
    if not match or len(sentences) < 2:
        return asked
    opening = _OPENING.match(sentences[-2])
    topic = match.group("topic")
    return f"{opening.group(0).strip()} {topic}?" if opening else f"What about {topic}?"


def about_topic(question: str) -> set[str]:
    """The terms of X in "What about X?" (the evidence must speak of X); empty for other questions."""
    sentences = [s for s in re.split(r"(?<=[?.!])\s+", question.strip()) if s]
    match = _WHAT_ABOUT.match(sentences[-1]) if sentences else None
    return set(terms(match.group("topic"))) if match else set()


def reason_strength(sentence: str) -> int:
    """2 when a sentence gives a reason outright ("because", "in reaction to"), 1 for a weaker cue, else 0."""
    if _STRONG_REASON.search(sentence):
        return 2
    return 1 if _WEAK_REASON.search(sentence) else 0


def is_uncertain(sentence: str) -> bool:
    """A sentence that says something may or may not happen ("It is unclear whether X will meet Y")."""
    return bool(_UNCERTAIN.search(sentence))


def says_no(question: str, sentence: str) -> bool:
    """Whether the evidence answers a yes/no question "no": it negates, or reports the opposite state of the
    one asked about ("Is the road still closed?" -> "Highway 9 reopened"). Both together cancel out."""
    asked = question_words(question)
    told = question_words(sentence)
    opposite = False
    for first, second in OPPOSITE_STATES:
        for a, b in ((first, second), (second, first)):
            in_q = any(w.startswith(a) for w in asked) and not any(w.startswith(b) for w in asked)
            in_s = (" " in b and b in sentence.lower()) or any(w.startswith(b) for w in told)
            if in_q and in_s:
                opposite = True
    negated = bool(_NEGATION.search(sentence)) and not _NEGATION.search(question)
    return opposite != negated


# ---- corrections --------------------------------------------------------------------------------------------

def is_correction(sentence: str) -> bool:
    return bool(_CORRECTION.search(sentence))


def superseded(sentence: str) -> set[str]:
    """The value keys a correction sets right ("not 80 as reported earlier" -> {"80"})."""
    keys: set[str] = set()
    for match in _CORRECTION.finditer(sentence):
        wrong = match.group("not") or match.group("earlier") or ""
        keys |= {key for _, key in numbers_in(wrong, set())}
    return keys


# ---- values: what a sentence says the number, time, day or name is ------------------------------------------

def numbers_in(sentence: str, asked: set[str]) -> list[tuple[str, str]]:
    """(as written, comparable key) for each figure in a sentence that the question does not name itself;
    years and day numbers of dates are not figures. A figure keeps its qualifier and unit ("no less than
    $17m"); its key is its kind of measure and value ("money:$:17000000"), so "76%" and "$17m" never compare."""
    found: list[tuple[str, str]] = []
    dated = [m.span() for m in _DAY_MENTION.finditer(sentence)] + [m.span() for m in _TIME.finditer(sentence)]
    for figure in figures(sentence):
        number = re.search(r"\d(?:[\d,]*\d)?(?:\.\d+)?", figure.shown)
        if number is None:
            continue
        raw = number.group(0).replace(",", "")
        at = figure.start + number.start()
        if raw in asked or any(s <= at < e for s, e in dated):
            continue
        if re.fullmatch(r"(19|20)\d\d", raw) and figure.shown == raw:
            continue
        found.append((figure.shown, f"{figure.measure}:{figure.value:g}"))
    return found


def times_in(sentence: str) -> list[tuple[str, str]]:
    found = []
    for match in _TIME.finditer(sentence):
        shown = match.group(0)
        hour = re.match(r"\d{1,2}", shown)
        minutes = re.search(r"[:.](\d{2})", shown)
        pm = "p" in shown.lower() and hour is not None and int(hour.group(0)) < 12
        minute = minutes.group(1) if minutes else "00"
        key = shown.lower() if hour is None else f"{int(hour.group(0)) + 12 * pm:02d}:{minute}"
        found.append((shown, key))
    return found


def days_in(sentence: str, published: date | None) -> list[tuple[str, str]]:
    """Days a sentence names, resolved to calendar days against the article's date ("on Saturday" in a paper
    of Monday 3 Aug 2026 is 1 Aug 2026)."""
    import dateparser

    found = []
    base = datetime.combine(published, datetime.min.time()) if published else None
    for match in _DAY_MENTION.finditer(without_reporting_days(sentence)):
        shown = match.group(0)
        settings = {"PREFER_DATES_FROM": "past", "RETURN_AS_TIMEZONE_AWARE": False}
        if base is not None:
            settings["RELATIVE_BASE"] = base
        parsed = dateparser.parse(shown, languages=["en"], settings=settings)
        if parsed is None:
            found.append((shown, shown.lower()))
        else:
            day = parsed.date()
            found.append((f"{shown} ({format_day(day)})" if day.isoformat() not in shown else shown, day.isoformat()))
    return found


def values_in(sentence: str, wanted: AnswerType, question: str, published: date | None,
              gazetteer: Gazetteer | None = None) -> list[tuple[str, str]]:
    """The values of the asked kind a sentence gives: figures, clock times, days or new names of people."""
    asked = question_words(question)
    if wanted is AnswerType.MONEY:  # "40 million euros", not the "7" of "7 votes to 2"
        return [(shown, key) for shown, key in numbers_in(sentence, asked) if _CURRENCY.search(shown)]
    if wanted in (AnswerType.NUMBER, AnswerType.DURATION):
        return numbers_in(sentence, asked)
    if wanted is AnswerType.TIME:
        return times_in(sentence)
    if wanted is AnswerType.DATE:
        return days_in(sentence, published)
    if wanted is AnswerType.ENTITY and gazetteer is not None:
        return [(n.text, n.text.lower()) for n in gazetteer.names(sentence)
                if n.kind is Kind.PERSON and n.text.split()[-1].lower() not in asked]
    return []


# ---- sources and dates --------------------------------------------------------------------------------------

def published_day(passage: Passage) -> date | None:
    return parse_date(passage.published) if passage.published else None


def format_day(day: date) -> str:
    """9 Oct 2026"""
    return f"{day.day} {day.strftime('%b')} {day.year}"


def source_label(passage: Passage) -> str:
    """"Coast Herald, 9 Oct 2026" (what is known of the two)."""
    day = published_day(passage)
    parts = [p for p in (passage.source, format_day(day) if day else None) if p]
    return ", ".join(parts) or "undated source"


@dataclass
class Stated:
    """One source's value for the thing asked, with the citation number it is shown under."""

    shown: str
    key: str
    n: int
    passage: Passage


def disagreement(about: str, kind: str, stated: list[Stated]) -> Disagreement:
    return Disagreement(about, kind, [DisagreementValue(s.shown, s.n, s.passage.source, s.passage.published)
                                      for s in stated])


def describe(found: Disagreement) -> str:
    """"The sources disagree: Coast Herald (7 Oct 2026) says 212 [1]; Northern Wire (8 Oct 2026) says 180 [2].\""""
    sides = []
    for value in found.values:
        day = parse_date(value.published) if value.published else None
        where = value.source or "one source"
        sides.append(f"{where}{f' ({format_day(day)})' if day else ''} says {value.value} [{value.n}]")
    return "The sources disagree: " + "; ".join(sides) + "."


def kind_of(wanted: AnswerType) -> str:
    return {AnswerType.DATE: "date", AnswerType.TIME: "time", AnswerType.ENTITY: "name"}.get(wanted, "quantity")


def sentences_of(text: str) -> list[str]:
    """A passage's sentences of four words or more, split as the sentence vectors are (punkt)."""
    return [text[s:e].strip() for s, e in sentence_spans(text) if len(text[s:e].split()) >= 4]


def passage_disagreements(question: str, wanted: AnswerType, cited: list[tuple[int, Passage]],
                          relevant: set[str]) -> list[Disagreement]:
    """Disagreements among cited passages (the LLM path): in each passage the sentence most about the
    question that gives a value of the asked kind; two articles giving different values disagree, unless the
    question asks for the latest state (then the later one is an update, not a disagreement)."""
    if asks_latest(question) or wanted in (AnswerType.ANY,):
        return []
    stated: list[Stated] = []
    for n, passage in cited:
        best: tuple[int, Stated] | None = None
        for sentence in sentences_of(passage.text):
            if not satisfies(sentence, wanted):
                continue
            values = values_in(sentence, wanted, question, published_day(passage))
            overlap = len(relevant & set(terms(sentence)))
            if values and overlap and (best is None or overlap > best[0]):
                best = (overlap, Stated(values[0][0], values[0][1], n, passage))
        if best and all(s.passage.doc_id != passage.doc_id for s in stated):
            stated.append(best[1])
    if len({s.key for s in stated}) < 2:
        return []
    return [disagreement(question.rstrip("?").strip(), kind_of(wanted), stated)]
