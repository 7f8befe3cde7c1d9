from __future__ import annotations

import pytest

from tasks.registry.matching import Option, match_cadastre, match_option, normalize

CIRCONSCRIPTIONS = [
    Option("000000", ""),
    Option("66", "Montréal"),
    Option("67", "Montréal-Est"),
    Option("23", "Québec"),
    Option("37", "Trois-Rivières"),
    Option("54", "Saint-Hyacinthe"),
    Option("44", "Shefford"),
    Option("70", "Sainte-Agathe-des-Monts"),
    Option("71", "Lac-Saint-Jean-Est"),
]
CADASTRES = [
    Option("000000", "Sélectionnez un cadastre"),
    Option("000001", "Cadastre du Québec"),
    Option("000231", "Cité de Québec, quartier Saint-Roch"),
    Option("000232", "Paroisse de Notre-Dame-de-Québec"),
    Option("000541", "Paroisse de Saint-Hyacinthe-le-Confesseur"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Montréal", "montreal"),
        ("  Trois-Rivières ", "trois rivieres"),
        ("St-Hyacinthe", "saint hyacinthe"),
        ("Ste-Agathe-des-Monts", "sainte agathe des monts"),
        ("Canton d'Ely", "canton d ely"),
        ("QUÉBEC__(ville)", "quebec ville"),
        ("Stanstead", "stanstead"),  # "st" only as a whole word
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("wanted", "value"),
    [
        ("Montréal", "66"),  # exact wins over the longer containing option
        ("MONTREAL", "66"),  # case and accents
        ("montreal est", "67"),
        ("St-Hyacinthe", "54"),  # abbreviation spelled out
        ("Ste-Agathe-des-Monts", "70"),
        ("Trois Rivieres", "37"),
        ("Hyacinthe", "54"),  # whole-word containment
        ("Trois-Rivière", "37"),  # typo: fuzzy
        ("Sheford", "44"),  # typo: fuzzy
        ("Lac St Jean Est", "71"),
    ],
)
def test_match_option_finds(wanted: str, value: str) -> None:
    chosen = match_option(wanted, CIRCONSCRIPTIONS)
    assert chosen is not None and chosen.value == value


@pytest.mark.parametrize("wanted", ["Gaspé", "", "   ", "Vancouver"])
def test_match_option_refuses_what_is_not_there(wanted: str) -> None:
    assert match_option(wanted, CIRCONSCRIPTIONS) is None


def test_empty_options_are_never_chosen() -> None:
    assert match_option("Sélectionnez un cadastre", CADASTRES) is None


@pytest.mark.parametrize(
    ("wanted", "value"),
    [
        ("Cadastre du Québec", "000001"),
        ("cadastre du quebec", "000001"),
        ("Québec", "000001"),  # any mention of Québec means the Cadastre du Québec...
        ("Paroisse de Notre-Dame-de-Québec", "000232"),  # ...unless it names another exactly
        ("Cité de Québec, quartier St-Roch", "000231"),
        ("Paroisse de St-Hyacinthe-le-Confesseur", "000541"),
    ],
)
def test_match_cadastre(wanted: str, value: str) -> None:
    chosen = match_cadastre(wanted, CADASTRES)
    assert chosen is not None and chosen.value == value
