"""The offline default answerer: quotes the best sentences of the retrieved passages, each cited."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np

from qa.answering import Answer, AnswerContext, Citation, Disagreement, Quote
from qa.answering.answer_types import AnswerType
from qa.answering.citations import REFUSAL_PREFIX, last_sentence, tokens_of
from qa.answering.enrichments import LazySentenceVectors, SentenceVectors, sentence_spans
from qa.answering.news import (
    Stated,
    describe,
    description_strength,
    disagreement,
    is_correction,
    is_uncertain,
    kind_of,
    numbers_in,
    published_day,
    reason_strength,
    said_by,
    source_label,
    superseded,
    values_in,
)
from qa.answering.question import Question
from qa.answering.refusal import WEAK_EVIDENCE, RefusalPolicy
from qa.answering.rules import disagreement as disagreement_rule
from qa.answering.rules import yes_no
from qa.answering.scorer import Scorer
from qa.answering.scorer import load as load_scorer
from qa.lexicon import (
    Gazetteer,
    neutralise_citations,
    predicate_coverage,
    predicate_terms,
    speaks_of,
    terms,
)
from qa.retrieval import Retrieval
from qa.store import Span

MIN_SENTENCE_WORDS = 5
# How far below the best score a later report may be and still lead a question about the latest state; how
# far another article's sentence may be and still count as an earlier figure or the other side of a
# disagreement. A correction and a sentence giving a reason (why questions) are ranked up by these.
LATEST_MARGIN = 0.25
VALUES_MARGIN = 0.15
WHY_MARGIN = 0.6
SAME_SUBJECT_TERMS = 2


@dataclass
class _Candidate:
    passage_index: int
    start: int
    end: int
    text: str
    score: float
    typed: bool
    day: date | None = None
    overlap: float = 0.0
    features: list[float] | None = None  # the scorer's inputs (eval.fit_scorer reads them)

    def label(self, retrieval: Retrieval) -> str:
        return source_label(retrieval.passages[self.passage_index])


class _Citer:
    """Numbers passages as they are first quoted, across the parts of one answer."""

    def __init__(self, retrieval: Retrieval) -> None:
        self.retrieval = retrieval
        self.numbers: dict[int, int] = {}
        self.citations: list[Citation] = []

    def cite(self, cand: _Candidate) -> int:
        if cand.passage_index not in self.numbers:
            self.numbers[cand.passage_index] = len(self.numbers) + 1
            self.citations.append(Citation(self.numbers[cand.passage_index],
                                           self.retrieval.passages[cand.passage_index],
                                           Quote(cand.text, cand.start, cand.end)))
        return self.numbers[cand.passage_index]

    def cite_value(self, cand: _Candidate, shown: str) -> int:
        """Cite a passage for one figure of a sentence (an earlier figure, one side of a disagreement): the
        quote is the figure itself, with its offsets, so it stands in the answer text as quoted."""
        if cand.passage_index in self.numbers:
            return self.numbers[cand.passage_index]
        raw = shown.split(" (")[0]
        at = cand.text.find(raw)
        if at < 0:
            return self.cite(cand)
        self.numbers[cand.passage_index] = len(self.numbers) + 1
        self.citations.append(Citation(self.numbers[cand.passage_index], self.retrieval.passages[cand.passage_index],
                                       Quote(raw, cand.start + at, cand.start + at + len(raw))))
        return self.numbers[cand.passage_index]

    def quote(self, cand: _Candidate) -> str:
        # an article's own "[3]" would read as a citation of passage 3: quoted as "(3)" (same length)
        return f"{neutralise_citations(cand.text)} [{self.cite(cand)}]"


@dataclass
class _Part:
    text: str | None  # None: this part is refused
    confidence: float | None
    disagreements: list[Disagreement]
    uncertain: bool = False


class ExtractiveAnswerer:
    """Picks the sentences that best match the question (embedding + keyword overlap), cites their passages.

    Sentence vectors are computed at ingest time, so a query costs one embedding (the question's) plus a dot
    product per candidate sentence. Deterministic for a given index. The expected answer type comes from the
    last sentence of the question, which in a conversation is the follow-up actually asked. News rules
    (qa.answering.news): for questions whose answer changes over time the latest report leads and a differing
    earlier figure is shown as earlier; a correction wins over what it corrects; differing values from two
    articles are named as a disagreement; yes/no questions open with Yes/No, why questions quote a reason, and
    a question with several parts is answered part by part.
    """

    name = "extractive"

    def __init__(
        self, embed: Callable[[list[str]], np.ndarray], refusal_threshold: float | None,
        gazetteer: Gazetteer, max_sentences: int = 2,
        passages_considered: int = 5, margin: float = 0.08, sentences: SentenceVectors | None = None,
        policy: RefusalPolicy | None = None, scorer: Scorer | None = None,
    ) -> None:
        self.enrichments = (sentences or SentenceVectors(),)
        self.on_use = None if self.enrichments[0].at_ingest else LazySentenceVectors(embed)
        self.unstored = LazySentenceVectors(embed, capacity=2_000)  # passages handed over without their vectors
        self.embed = embed
        self.scorer = scorer or load_scorer()
        self.policy = policy or RefusalPolicy(self.scorer.threshold if refusal_threshold is None else refusal_threshold)
        self.threshold = self.policy.threshold
        self.gazetteer = gazetteer
        self.max_sentences = max_sentences
        self.passages_considered = passages_considered
        self.margin = margin

    def candidates(self, question: Question, retrieval: Retrieval) -> list[_Candidate]:
        """Every sentence of the top passages, scored against the question, best first."""
        expect = question.expect
        q_terms = set(question.terms)
        # in a conversation the follow-up's own words weigh again: the earlier turn only says what it is about
        follow_up = set(question.follow_up_terms)
        query_vector = retrieval.query_vector if question.text == retrieval.query else self.embed([question.text])[0]
        form = question.form
        # yes/no and why: the evidence must speak of what is asked, not only of who is involved
        predicate = question.predicate
        topic = set(question.topic)  # "What about Iran?": the evidence speaks of Iran
        describer = set(question.describer)
        sentences: list[tuple[int, int, int, str, np.ndarray | None]] = []
        previous: dict[tuple[int, int], str] = {}  # the sentence before each one, in its passage
        seen: set[tuple[str, int]] = set()
        for index, passage in enumerate(retrieval.passages[: self.passages_considered]):
            before = ""
            spans = passage.sentences  # handed over by retrieval; answering never reads the store
            if spans is None:  # a passage retrieved without them: split here, embedded below
                spans = [Span(passage.start + s, passage.start + e, None) for s, e in sentence_spans(passage.text)]
            for span in spans:
                start, end, vector = span.start, span.end, span.vector
                text = passage.text[start - passage.start : end - passage.start]
                previous[(index, start)], before = before, text
                if (passage.doc_id, start) in seen:
                    continue
                seen.add((passage.doc_id, start))
                if len(text.split()) < MIN_SENTENCE_WORDS or text.strip() == passage.title.strip():
                    continue  # headlines and cross-heads restate topics; they do not answer
                sentences.append((index, start, end, text, vector))
        # a stored vector first; a sentence stored without one (lazy, or not yet filled in the background) or
        # handed over without spans is embedded on first use, rounded as the store keeps vectors: same answers
        missing = [n for n, (*_, v) in enumerate(sentences) if v is None or v.size == 0]
        if missing:
            made = (self.on_use or self.unstored).vectors([sentences[n][3] for n in missing])
            for n, vector in zip(missing, made, strict=True):
                sentences[n] = (*sentences[n][:4], vector)
        found: list[_Candidate] = []
        rows: list[list[float]] = []
        place: dict[int, int] = {}  # each passage's sentences seen so far
        passage_cosine = self._passage_cosines(sentences, query_vector)
        newest = _date_ranks(retrieval.passages[: self.passages_considered])
        idf = _idf([set(terms(text)) for _, _, _, text, _ in sentences])
        q_weight = sum(idf.get(t, idf[""]) for t in q_terms) or 1.0
        for index, start, end, text, vector in sentences:
            passage = retrieval.passages[index]
            day = published_day(passage)
            said = set(terms(text))  # the sentence's terms, read once for every check below
            overlap = len(q_terms & said) / len(q_terms) if q_terms else 0.0
            typed = expect.met_by(text, passage.text, self.gazetteer, passage.source)
            if topic and not topic & said:
                typed = False
            if predicate:
                typed = typed and speaks_of(predicate, said, strict=form == "yes-no")
            reason = reason_strength(text) if form == "why" else 0
            if form == "why":
                typed = typed and reason > 0
            describes = description_strength(text) if form == "description" else 0
            if describer:  # the sentence that describes, said by whoever the question names
                before = previous.get((index, start), "")
                direct = said_by(describer, text, "")
                typed = typed and describes > 0 and (direct or said_by(describer, text, before))
            place[index] = place.get(index, -1) + 1
            rows.append([
                float(np.dot(vector, query_vector)), passage_cosine[index], overlap,
                sum(idf.get(t, idf[""]) for t in q_terms & said) / q_weight,
                len(follow_up & said) / len(follow_up) if follow_up else 0.0,
                float(typed), _entity_share(question, text), predicate_coverage(predicate, said) if predicate else 0.0,
                reason / 2, describes / 2, float(is_correction(text)), 1.0 / (1 + place[index]),
                float(start == 0 or passage.text[: start - passage.start].strip() == passage.title.strip()),
                1.0 / (1 + index), 1.0 / (1 + newest[index]),
            ])
            found.append(_Candidate(index, start, end, text, 0.0, typed, day, overlap))
        _relative(rows)
        scores = self.scorer.score(np.asarray(rows, dtype=np.float32))
        for cand, score, row in zip(found, scores, rows, strict=True):
            cand.score = float(score)
            cand.features = row
        found = _without_corrected(found)
        found.sort(key=lambda c: (-c.score, c.passage_index, c.start))
        return found

    def _passage_cosines(self, sentences: list[tuple[int, int, int, str, np.ndarray]],
                         query_vector: np.ndarray) -> dict[int, float]:
        """Cosine between the question and each passage, the passage as the mean of its sentence vectors."""
        grouped: dict[int, list[np.ndarray]] = {}
        for index, _, _, _, vector in sentences:
            grouped.setdefault(index, []).append(vector)
        cosines: dict[int, float] = {}
        for index, vectors in grouped.items():
            mean = np.mean(vectors, axis=0)
            cosines[index] = float(np.dot(mean, query_vector) / (np.linalg.norm(mean) or 1.0))
        return cosines

    def already_quoted(self, context: str, retrieval: Retrieval) -> set[tuple[int, int]]:
        """The sentences the previous turn would have quoted (its question is the context of a standalone
        follow-up): a follow-up asking what came next ("What did Russia do in response?") is not answered
        by them again."""
        if not context:
            return set()
        previous = Question.parse(context, last_sentence(context))
        ranked = [c for c in self.candidates(previous, retrieval) if c.typed or not previous.expect.strict]
        return {(c.passage_index, c.start) for c in ranked[: self.max_sentences]}

    def answer(self, question: str | Question, retrieval: Retrieval) -> Answer:
        question = Question.of(question)
        citer = _Citer(retrieval)
        if len(question.parts) == 1:
            part = self._part(question, retrieval, citer)
            if part.text is None:
                refusal = self.policy.weak(question, None, retrieval)
                assert refusal is not None
                return Answer(refusal.message, True, confidence=part.confidence, refusal_reason=refusal.reason)
            return Answer(part.text, part.uncertain, citer.citations, confidence=part.confidence,
                          disagreements=part.disagreements,
                          refusal_reason=WEAK_EVIDENCE if part.uncertain else None)
        texts: list[str] = []
        found: list[Disagreement] = []
        answered = [self._part(question.part(p), retrieval, citer) for p in question.parts]
        for text, part in zip(question.parts, answered, strict=True):
            texts.append(part.text if part.text is not None else f"{REFUSAL_PREFIX} “{text.rstrip('?')}”.")
            found += part.disagreements
        if all(p.text is None for p in answered):
            refusal = self.policy.weak(question, None, retrieval)
            assert refusal is not None
            return Answer(refusal.message, True, confidence=max((p.confidence or 0.0) for p in answered),
                          refusal_reason=refusal.reason)
        confidence = min(p.confidence or 0.0 for p in answered if p.text is not None)
        return Answer(" ".join(texts), False, citer.citations, confidence=round(confidence, 4), disagreements=found)

    def _part(self, question: Question, retrieval: Retrieval, citer: _Citer) -> _Part:
        """One question (or one part of a multi-part question): its answer text, or None to refuse."""
        asked, expect, form = question.asked, question.expect, question.form
        ranked = self.candidates(question, retrieval)
        if question.must_match:
            ranked = [c for c in ranked if c.typed]  # only a sentence with the asked kind of answer can answer
        if question.sequence:
            quoted = self.already_quoted(question.context, retrieval)
            ranked = [c for c in ranked if (c.passage_index, c.start) not in quoted]
        best = ranked[0] if ranked else None
        if best is None or self.policy.weak(question, best.score) is not None:
            return _Part(None, round(best.score, 4) if best else None, [])
        confidence = round(best.score, 4)
        if form == "why":  # a sentence giving a reason outright beats one whose "after" or "over" may
            outright = [c for c in ranked if reason_strength(c.text) == 2 and c.overlap > 0
                        and c.score >= best.score - WHY_MARGIN]
            best = outright[0] if outright else best
        latest = question.latest
        if latest:  # of the reports about as good as the best, the latest leads
            pool = [c for c in ranked if c.score >= max(self.threshold, best.score - LATEST_MARGIN)]
            best = max(pool, key=lambda c: (c.day or date.min, c.score))
        parts = [citer.quote(best)]
        if latest:
            parts[0] += f" ({best.label(retrieval)})"
        if form == "yes-no":
            uncertain = is_uncertain(best.text) and not is_correction(best.text)
            passage = retrieval.passages[best.passage_index]
            before = passage.text[: best.start - passage.start][-300:]
            lead = "The articles don't say for certain." if uncertain else yes_no.verdict(question, best.text,
                                                                                           before)
            text = f"{lead} {' '.join(parts)}" if lead else " ".join(parts)
            return _Part(text, confidence, [], uncertain)
        chosen = [best]
        for cand in ranked if form != "why" else []:  # why: the reason alone
            if len(chosen) >= self.max_sentences or cand.score < best.score - self.margin:
                break
            if cand is best or not cand.typed or (latest and (cand.day or date.min) < (best.day or date.min)):
                continue
            chosen.append(cand)
            parts.append(citer.quote(cand))
        found: list[Disagreement] = []
        if expect.wanted not in (AnswerType.ANY, AnswerType.ENTITY):  # names: too unreliable without a reader
            stated = self._values(ranked, best, question, citer, latest)
            if latest and stated:
                shown = " and ".join(f"{s.shown} [{s.n}] ({source_label(s.passage)})" for s in stated[1:])
                parts.append(f"Earlier reports said {shown}.")
            elif stated:
                found = [disagreement(asked.rstrip("?").strip(), kind_of(expect.wanted), stated)]
                parts.append(describe(found[0]))
        return _Part(" ".join(parts), confidence, found)

    def _values(self, ranked: list[_Candidate], best: _Candidate, question: Question, citer: _Citer,
                latest: bool) -> list[Stated]:
        """The lead sentence's value of the asked kind, then the differing values other articles give about as
        well: earlier figures (latest questions) or the other sides of a disagreement. [] when no other differs."""
        expect, asked = question.expect, question.asked

        def values(cand: _Candidate) -> list[tuple[str, str]]:
            return values_in(cand.text, expect.wanted, asked, cand.day, self.gazetteer)

        own = values(best)
        if not own:
            return []
        keys = {key for _, key in own}
        asked_terms = set().union(*predicate_terms(asked))  # what is asked beyond the names it mentions
        lead = Stated(own[0][0], own[0][1], citer.cite(best), citer.retrieval.passages[best.passage_index])
        found: list[Stated] = []
        for cand in ranked:  # one that could answer alone, or about as good as the lead
            if cand.score < min(self.threshold, best.score - VALUES_MARGIN):
                break
            passage = citer.retrieval.passages[cand.passage_index]
            if not cand.typed or passage.doc_id in {lead.passage.doc_id, *(s.passage.doc_id for s in found)}:
                continue
            if latest and not (cand.day and best.day and cand.day < best.day):
                continue  # for the latest state only an earlier report is "earlier"
            if is_correction(best.text):
                continue  # a correction settles the value: the others are not a disagreement
            theirs = values(cand)
            if not theirs or theirs[0][1] in keys or not _same_subject(best.text, cand.text, asked_terms):
                continue
            if not disagreement_rule.same_question(question, best.text, cand.text):
                continue  # a figure about less of what is asked: another measure
            if not disagreement_rule.same_measure(own[0][1], theirs[0][1]) or not disagreement_rule.same_subject(
                    question, _up_to(best, citer.retrieval), _up_to(cand, citer.retrieval)):
                continue  # another kind of measure ("76%" / "$17m"), or another company or story
            if {key for _, key in theirs} & {key for _, key in own}:
                continue  # it also gives the lead's value: not another side
            keys.add(theirs[0][1])
            found.append(Stated(theirs[0][0], theirs[0][1], citer.cite_value(cand, theirs[0][0]), passage))
        return [lead, *found] if found else []

    def stream(self, question: str | Question, retrieval: Retrieval) -> Iterator[str | Answer]:
        result = self.answer(question, retrieval)
        yield from tokens_of(result.text)
        yield result


def _relative(rows: list[list[float]]) -> None:
    """Append each candidate's features relative to the others and its typed interactions (FEATURES' tail)."""
    cosines = [row[0] for row in rows]
    best = max(cosines, default=0.0)
    order = sorted(range(len(rows)), key=lambda i: -cosines[i])
    place = {i: n for n, i in enumerate(order)}
    for i, row in enumerate(rows):
        row += [row[0] - best, 1.0 / (1 + place[i]), row[0] * row[5], row[3] * row[5]]


def _date_ranks(passages: list) -> list[int]:
    """Each passage's place by publication date, newest first (undated last)."""
    order = sorted(range(len(passages)), key=lambda i: published_day(passages[i]) or date.min, reverse=True)
    return [order.index(i) for i in range(len(passages))]


def _idf(sentences: list[set[str]]) -> dict[str, float]:
    """Inverse document frequency of each term over the candidate sentences ("" for a term none has)."""
    n = len(sentences)
    counts: dict[str, int] = {}
    for said in sentences:
        for term in said:
            counts[term] = counts.get(term, 0) + 1
    idf = {t: float(np.log(1 + (n - c + 0.5) / (c + 0.5))) for t, c in counts.items()}
    idf[""] = float(np.log(1 + (n + 0.5) / 0.5))
    return idf


def _entity_share(question: Question, text: str) -> float:
    """The share of the names the question asks about that the text names (1 when it asks about none)."""
    if not question.entities:
        return 1.0
    return sum(yes_no.mentioned(question.entities, text)) / len(question.entities)


def _up_to(cand: _Candidate, retrieval: Retrieval) -> str:
    """The sentence with what its passage says before it (where "the bridge" of the sentence is named)."""
    passage = retrieval.passages[cand.passage_index]
    return passage.text[: cand.end - passage.start]


def _same_subject(first: str, second: str, asked: set[str]) -> bool:
    """Two sentences report the same thing when they share two content words besides their figures ("The
    ferry was carrying 212 passengers and crew" / "The ferry had 180 passengers and crew on board"), one of
    them a word of what the question asks (not only a name: "Syrian jets ... on April 4" is another event
    than "the strike, which took place on April 7")."""
    def words_of(text: str) -> set[str]:
        return {t for t in terms(text) if not any(ch.isdigit() for ch in t)}

    shared = words_of(first) & words_of(second)
    return len(shared) >= SAME_SUBJECT_TERMS and bool(shared & asked)


def _without_corrected(found: list[_Candidate]) -> list[_Candidate]:
    """Sentences stating a value that a later (or same-day) correction sets right are not quoted."""
    wrong: list[tuple[set[str], date | None, str]] = [
        (superseded(c.text), c.day, c.text) for c in found if is_correction(c.text)]
    if not wrong:
        return found
    kept = []
    for cand in found:
        keys = {key for _, key in numbers_in(cand.text, set())}
        if any(keys & bad and text != cand.text and (day is None or cand.day is None or cand.day <= day)
               for bad, day, text in wrong):
            continue
        kept.append(cand)
    return kept


def build(context: AnswerContext) -> ExtractiveAnswerer:
    """The registry's factory: sentence vectors from the SQL store, the question embedded by the embedder."""
    settings = context.settings
    policy = context.refusal_policy()
    return ExtractiveAnswerer(context.embedder.embed, policy.threshold, Gazetteer(),
                              settings.max_answer_sentences,
                              sentences=SentenceVectors.of(settings.sentence_vectors),
                              policy=policy)
