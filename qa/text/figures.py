"""Figures as a sentence writes them, with their qualifier and unit ("no less than $17m", "76%", "5.05m"),
and the kind of measure each is (money in a currency, a percentage, a plain count, a length ...), so two
figures are compared only when they measure the same kind of thing. Currency symbols and codes are read by
price-parser."""

from __future__ import annotations

import re
from dataclasses import dataclass

QUALIFIERS = ("no less than", "no more than", "not less than", "not more than", "as many as", "as much as",
              "as few as", "at least", "at most", "more than", "less than", "fewer than", "up to", "just over",
              "just under", "almost", "nearly", "about", "around", "approximately", "roughly", "some", "over",
              "under")
_QUALIFIER = "|".join(q.replace(" ", r"\s+") for q in QUALIFIERS)
_CURRENCY = r"(?:[$€£¥]|US\$|(?:USD|EUR|GBP|JPY)\s?)"
_SCALE = r"(?:bn|m|k|tn|million|billion|trillion|thousand)"
_UNIT = (r"(?:%|\s?per\s?cent|\s?percent|\s?percentage points?|\s?(?:euros?|dollars?|pounds?|yen|yuan|rupees?)|"
         r"(?<=\d)(?:km|kg|cm|mm|m)\b|\s(?:metres?|meters?|kilometres?|kilometers?|miles?|tonnes?|tons?|"
         r"seconds?|minutes?|hours?|days?|weeks?|months?|years?)\b)")
FIGURE_PATTERN = (rf"(?:(?P<qualifier>{_QUALIFIER})\s+)?(?P<currency>{_CURRENCY})?(?P<number>\d(?:[\d,]*\d)?(?:\.\d+)?)"
                  rf"(?:\s?(?P<scale>{_SCALE})\b)?(?P<unit>{_UNIT})?")
_FIGURE = re.compile(FIGURE_PATTERN, re.I)
_CURRENCIES = {"€": "EUR", "euro": "EUR", "eur": "EUR", "$": "USD", "us$": "USD", "usd": "USD", "dollar": "USD",
               "£": "GBP", "gbp": "GBP", "pound": "GBP", "¥": "JPY", "yen": "JPY", "jpy": "JPY"}
_SCALES = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9, "tn": 1e12,
           "trillion": 1e12}


@dataclass(frozen=True)
class Figure:
    """One figure: as written, its value (scaled), its kind of measure ("money:$", "percent", "count",
    "length" ...) and where it stands in the sentence."""

    shown: str
    value: float
    measure: str
    start: int
    end: int


def _measure(currency: str | None, scale: str | None, unit: str | None) -> str:
    unit = (unit or "").strip().lower()
    if currency or unit.startswith(("euro", "dollar", "pound", "yen", "yuan", "rupee")):
        from price_parser import Price

        found = (Price.fromstring(f"{currency or ''}1 {unit}").currency or currency or unit).strip().lower()
        return f"money:{_CURRENCIES.get(found.rstrip('s'), found)}"
    if "%" in unit or "cent" in unit:
        return "percent"
    if "point" in unit:
        return "points"
    if unit in ("m", "km", "cm", "mm") or unit.startswith(("metre", "meter", "kilomet", "mile")):
        return "length"
    if unit in ("kg",) or unit.startswith(("tonne", "ton")):
        return "weight"
    if unit.startswith(("second", "minute", "hour", "day", "week", "month", "year")):
        return "time"
    return "count"


def figures(sentence: str) -> list[Figure]:
    """Every figure of a sentence with its qualifier, currency, scale and unit kept in `shown`."""
    found: list[Figure] = []
    for match in _FIGURE.finditer(sentence):
        number = float(match.group("number").replace(",", ""))
        scale = (match.group("scale") or "").lower()
        unit = match.group("unit")
        if scale == "m" and not match.group("currency") and not unit:
            unit, scale = "m", ""  # "5.05m" without a currency is a length
        value = number * _SCALES.get(scale, 1.0)
        found.append(Figure(match.group(0).strip(), value, _measure(match.group("currency"), scale, unit),
                            match.start(), match.end()))
    return found
