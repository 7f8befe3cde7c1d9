from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz

from tasks.request import CIRCONSCRIPTIONS, InvalidRequest

__all__ = [
    "QUEBEC_CADASTRE_VALUE",
    "Option",
    "check_circonscription",
    "match_cadastre",
    "match_option",
    "normalize",
]

QUEBEC_CADASTRE_VALUE = "000001"  # "Cadastre du Québec" on the registry's forms
EMPTY_OPTION_VALUES = frozenset({"", "000000"})
TOKEN_SORT_THRESHOLD = 80.0  # 0-100; below this a typo-level match is not trusted
WRATIO_THRESHOLD = 90.0  # WRatio is lenient with partial matches, so it needs a higher bar
_ABBREVIATIONS = {"st": "saint", "ste": "sainte"}


@dataclass(frozen=True)
class Option:
    value: str
    text: str


def normalize(text: str) -> str:
    """Lowercase, no accents, words separated by single spaces, St-/Ste- spelled out."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = re.sub(r"[\W_]+", " ", bare).split()
    return " ".join(_ABBREVIATIONS.get(word, word) for word in words)


def _candidates(options: Iterable[Option]) -> list[tuple[Option, str]]:
    return [
        (option, normalize(option.text))
        for option in options
        if option.value.strip() not in EMPTY_OPTION_VALUES and normalize(option.text)
    ]


def match_option(wanted: str, options: Iterable[Option]) -> Option | None:
    """The option meaning `wanted`: exact, then whole-word containment, then fuzzy; else None."""
    target = normalize(wanted)
    if not target:
        return None
    candidates = _candidates(options)
    for option, text in candidates:
        if text == target:
            return option

    padded = f" {target} "
    contained = [
        (abs(len(text) - len(target)), option)
        for option, text in candidates
        if padded in f" {text} " or f" {text} " in padded
    ]
    if contained:
        return min(contained, key=lambda pair: pair[0])[1]

    best: tuple[float, Option] | None = None
    for option, text in candidates:
        score = fuzz.token_sort_ratio(target, text)
        if score < TOKEN_SORT_THRESHOLD:
            wratio = fuzz.WRatio(target, text)
            score = wratio if wratio >= WRATIO_THRESHOLD else 0.0
        if score and (best is None or score > best[0]):
            best = (score, option)
    return best[1] if best else None


def match_cadastre(wanted: str, options: Iterable[Option]) -> Option | None:
    """Like match_option, but a mention of Québec that names no other cadastre exactly means the
    Cadastre du Québec (000001): parishes such as "Notre-Dame-de-Québec" also contain the word."""
    options = list(options)
    target = normalize(wanted)
    for option, text in _candidates(options):
        if text == target:
            return option
    if "quebec" in target.split():
        for option in options:
            if option.value.strip() == QUEBEC_CADASTRE_VALUE:
                return option
    return match_option(wanted, options)


def check_circonscription(name: str) -> str:
    """The listed circonscription `name` means, matched as the registry's form matches it (accents,
    case, St-/Ste- and small typos forgiven); InvalidRequest naming the closest ones otherwise."""
    options = [Option(value=c, text=c) for c in CIRCONSCRIPTIONS]
    found = match_option(name, options)
    if found is not None:
        return found.value
    initial = normalize(name)[:1]
    near = [c for c in CIRCONSCRIPTIONS if normalize(c).startswith(initial)] if initial else []
    hint = f" (with {initial.upper()}: {', '.join(near)})" if near else ""
    raise InvalidRequest(
        f"circonscription_fonciere {name!r} is not a circonscription foncière of the registry"
        f"{hint}; `registre queue add --help` lists them"
    )
