"""Grounding a model's answer before anyone sees it: the answer is split into sentences and a sentence is kept
only when it cites at least one passage and what it states (its numbers, names and content words) is found in
the passage(s) it cites. Prompt-template debris (`<<SYS>>`, `[INST]`, `<start_of_turn>`, `<|im_start|>`, our own
passage fences and headers) is removed first; passage text pasted back without a citation is a sentence that
cites nothing, so it goes too."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from qa.answering.citations import CITATION, REFUSAL_PREFIX, normalise_citations
from qa.lexicon import MONTHS, STOPWORDS, WEEKDAYS, parse_date, synonyms, terms, words
from qa.retrieval import Passage

# Share of a sentence's content terms (names and numbers aside, which must all be found) that its cited
# passages must contain. Measured on the eval sets (docs/benchmarks.md, `python -m bench.llm_real --scripted`).
MIN_TERM_COVERAGE = 0.6
# The answer is shown only when at least this share of its claim sentences survive (and at least one does);
# otherwise the fallback answers.
MIN_KEPT_SHARE = 0.5

# Chat-template and special tokens of the common model families, and the pieces of our own prompt.
_END_OF_TURN = re.compile(r"<end_of_turn>|<\|im_end\|>|<\|eot_id\|>|<\|endoftext\|>|<\|end\|>|</s>|<eos>")
_DEBRIS = re.compile(
    r"<</?SYS>>|\[/?INST\]|<start_of_turn>(?:user|model|system)?|<end_of_turn>|<\|(?:im_start|im_end|eot_id|"
    r"endoftext|end|start_header_id|end_header_id|begin_of_text|system|user|assistant)\|>(?:system|user|assistant)?"
    r"|</?s>|<bos>|<eos>|<pad>|<unk>|^#{2,}\s*(?:Instruction|Response|System|User|Assistant)\s*:?\s*$"
    r"|^(?:Passages|Question|System|User|Assistant|Answer)\s*:|\"\"\"",
    re.I | re.M,
)
_SENTENCE_END = re.compile(r"[.!?…]+[\"”’)]*(?:\s*\[[0-9]+\])*[.!?]?(?=\s|$)")  # "… fired. [1]", "6 a.m. [2]."
_ABBREVIATIONS = words(
    "mr mrs ms dr st jr sr prof gen col lt sgt capt gov sen rep rev vs etc inc ltd co corp dept est fig approx "
    "jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs fri sat sun u.s u.k u.n e.g i.e"
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CAPITALISED = re.compile(r"\b[A-Z][\w’'.-]*")
_STANCE = re.compile(r"^\W*(?:yes|no|partly|not quite|not exactly)\W*$", re.I)
_NUMBER_WORDS = {w: i for i, w in enumerate(re.findall(r"\w+", (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty")))}
_NOT_NAMES = frozenset({"yes", "no", "i", "the", "a", "an", "according", "however", "but", "and", "in", "on",
                        "at", "this", "that", "these", "those", "it", "they", "he", "she", "there", "both",
                        "earlier", "later", "sources", "source", "passage", "passages", "articles", "article"})


@dataclass
class Dropped:
    """A sentence of the model's answer that is not shown, and why."""

    text: str
    reason: str
    position: int  # 1-based, among the answer's sentences


@dataclass
class Grounded:
    """What survives of a model's answer: the kept text, the dropped sentences, and the debris removed."""

    text: str
    kept: int
    dropped: list[Dropped] = field(default_factory=list)
    debris: bool = False

    @property
    def enough(self) -> bool:
        """Whether enough of the answer survived to be shown."""
        claims = self.kept + len(self.dropped)
        return self.kept > 0 and self.kept >= MIN_KEPT_SHARE * claims


def strip_debris(text: str) -> tuple[str, bool]:
    """The reply up to an end-of-turn token (what follows is the model playing the next turn), with template
    tokens and our prompt's fences removed; and whether anything was removed."""
    cut = _END_OF_TURN.search(text)
    if cut and text[:cut.start()].strip():
        text = text[:cut.start()]
    cleaned = _DEBRIS.sub("\n", text)
    return cleaned, cleaned != text or cut is not None


def split_sentences(text: str) -> list[str]:
    """Sentences, each with the [n] markers that follow its full stop; lines are never joined."""
    sentences: list[str] = []
    for line in text.splitlines():
        start = 0
        for match in _SENTENCE_END.finditer(line):
            before = line[start:match.start()].rsplit(None, 1)
            word = before[-1].lower().rstrip(".") if before else ""
            after = line[match.end():].lstrip()
            quoted = line.count("“", start, match.start()) > line.count("”", start, match.start())
            if (quoted or word in _ABBREVIATIONS or re.fullmatch(r"[a-z]", word) or after[:1].islower()
                    or (word == "no" and after[:1].isdigit())):  # inside a quotation, "Mr.", "No. 5"
                continue
            sentences.append(line[start:match.end()].strip())
            start = match.end()
        if line[start:].strip():
            sentences.append(line[start:].strip())
    return [s for s in sentences if s.strip(" -*•\t")]


def _header_line(passage: Passage, n: int) -> str:
    return f"[{n}] {passage.title}".strip().lower()


def _date_words(published: str | None) -> str:
    """A passage's date as the words a model may write it with ("12 April 2017", "Wednesday")."""
    day: date | None = parse_date(published) if published else None
    if day is None:
        return published or ""
    return f"{day.day} {day.month} {day.year} {MONTHS[day.month - 1]} {WEEKDAYS[day.weekday()]}"


@dataclass
class _Evidence:
    """The words and numbers of the cited passages (with their headers: title, outlet, date)."""

    words: set[str]
    stems: set[str]
    numbers: set[str]

    @classmethod
    def of(cls, passages: list[Passage]) -> _Evidence:
        text = " ".join(f"{p.title} {p.source or ''} {_date_words(p.published)} {p.text}" for p in passages)
        lowered = text.lower()
        words = set(re.findall(r"[\w’'-]+", lowered)) | set(re.findall(r"\w+", lowered))
        words |= {a.replace(".", "") for a in re.findall(r"\b(?:[a-z]\.){2,}", lowered)}  # "U.S." is "us"
        numbers = {_number(n) for n in _NUMBER.findall(text)}
        numbers |= {str(v) for w, v in _NUMBER_WORDS.items() if w in words}
        return cls(words, set(terms(text)), numbers)

    def has_name(self, name: str) -> bool:
        word = name.lower().strip(".’'-").removesuffix("’s").removesuffix("'s").replace(".", "")
        if word in self.words or name.lower().strip(".") in self.words:
            return True
        # "Russian" for "Russia", "Syria's" for "Syria": the same name with an ending
        return len(word) >= 5 and any(w.startswith(word[:-1]) or word.startswith(w) for w in self.words
                                      if len(w) >= 4 and abs(len(w) - len(word)) <= 3)

    def has_term(self, term: str) -> bool:
        return term in self.stems or bool(synonyms(term) & self.stems)


def _number(text: str) -> str:
    """"1,000" and "1000", "07" and "7" are the same number."""
    value = text.replace(",", "")
    if "." in value:
        whole, _, part = value.partition(".")
        value = (whole.lstrip("0") or "0") + "." + part.rstrip("0") if part.strip("0") else whole
    return value.lstrip("0") or "0"


def unsupported(claim: str, evidence: _Evidence) -> list[str]:
    """What the claim states that its cited passages do not: each number and name not found in them, else
    (when too few of its content words are found) the missing words; empty when the claim is supported."""
    missing = [n for n in _NUMBER.findall(claim) if _number(n) not in evidence.numbers]
    for match in _CAPITALISED.finditer(claim):
        name = match.group(0).rstrip(".’'-")
        lower = name.lower()
        opening = claim[:match.start()].strip(" \"“'(*-") == ""
        if lower in _NOT_NAMES or lower in STOPWORDS or (opening and lower in _COMMON_OPENERS):
            continue
        if not evidence.has_name(name):
            missing.append(name)
    if missing:
        return missing
    content = [t for t in dict.fromkeys(terms(claim)) if not t.isdigit() and t not in _FRAMING]
    absent = [t for t in content if not evidence.has_term(t)]
    if content and len(content) - len(absent) < MIN_TERM_COVERAGE * len(content):
        return absent
    return []


# Words an answer frames its evidence with, as the prompt asks ("the sources disagree", "earlier reports said"):
# not claims of their own.
_FRAMING = frozenset(terms(
    "source sources disagree disagreement report reports reported reporting earlier later latest say said says "
    "according article articles passage passages state states stated mention mentioned previously however also "
    "whereas while answer question"))
# Sentence-initial words that are capitalised only because they open the sentence.
_COMMON_OPENERS = words("earlier later meanwhile after before during since while when where what who why how "
                            "both neither either each many most some several officials reports report")


def ground(text: str, passages: list[Passage]) -> Grounded:
    """Keep the sentences of `text` that cite a passage which supports them (see the module docstring)."""
    cleaned, debris = strip_debris(normalise_citations(text))
    headers = {_header_line(p, n) for n, p in enumerate(passages, start=1)}
    kept: list[str] = []
    dropped: list[Dropped] = []
    pending_stance = ""
    evidence: dict[tuple[int, ...], _Evidence] = {}  # per set of cited passages
    for position, sentence in enumerate(split_sentences(cleaned), start=1):
        cited = [int(n) for n in CITATION.findall(sentence)]
        claim = CITATION.sub("", sentence).strip()
        if not re.search(r"\w", claim):
            if cited and kept:  # a line of markers alone belongs to the sentence before it
                kept[-1] = kept[-1] + "".join(f"[{n}]" for n in cited)
            continue
        if sentence.lower().startswith(tuple(headers)):
            debris = True  # a passage header pasted back
            continue
        if _STANCE.match(claim) and not cited:
            pending_stance = claim + " "
            continue
        if claim.startswith(REFUSAL_PREFIX) and not cited:
            kept.append(pending_stance + sentence)  # "The articles don't say for that part": not a claim
            pending_stance = ""
            continue
        valid = [n for n in cited if 1 <= n <= len(passages)]
        if not valid:
            reason = (f"cites {', '.join(f'[{n}]' for n in dict.fromkeys(cited))}, which names no passage" if cited
                      else "cites no passage")
            dropped.append(Dropped(pending_stance + sentence, reason, position))
            pending_stance = ""
            continue
        key = tuple(sorted(set(valid)))
        if key not in evidence:
            evidence[key] = _Evidence.of([passages[n - 1] for n in key])
        missing = unsupported(claim, evidence[key])
        if missing:
            where = ", ".join(f"[{n}]" for n in dict.fromkeys(valid))
            shown = ", ".join(f"“{m}”" for m in list(dict.fromkeys(missing))[:3])
            dropped.append(Dropped(pending_stance + sentence, f"{where} does not say {shown}", position))
        else:
            kept.append(pending_stance + sentence)
        pending_stance = ""
    claims = [k for k in kept if not CITATION.sub("", k).strip().startswith(REFUSAL_PREFIX)]
    return Grounded(" ".join(kept), len(claims), dropped, debris)


def dropped_notice(grounded: Grounded) -> str | None:
    """One line saying which sentences were not shown and why, by position (None when all were kept); the
    sentences themselves are in the answer's `dropped` list, never on the page."""
    if not grounded.dropped:
        return None
    total = grounded.kept + len(grounded.dropped)
    reasons = "; ".join(f"sentence {d.position} {d.reason}" for d in grounded.dropped[:4])
    more = f"; {len(grounded.dropped) - 4} more" if len(grounded.dropped) > 4 else ""
    return (f"{len(grounded.dropped)} of {total} sentences of the model's answer were not shown, as the passages "
            f"they cite do not support them ({reasons}{more}).")
