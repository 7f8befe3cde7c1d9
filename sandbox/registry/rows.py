from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from tasks.pages.index_rows import IndexRow, Party

__all__ = ["format_numero", "generate_rows"]

PERSONS = (
    "Tremblay, Jean-Guy",
    "Gagnon, Marie-Ève",
    "Roy, François",
    "Côté, Hélène",
    "Bouchard, Réjean",
    "Gauthier, Louise",
    "Morin, Stéphane",
    "Lavoie, Geneviève",
    "Fortin, André",
    "Gagné, Thérèse",
    "Ouellet, Benoît",
    "Pelletier, Josée",
    "Bélanger, Émile",
    "Lévesque, Chantal",
    "Bergeron, Léo",
    "Leblanc, Noémie",
    "Paquette, Gérard",
    "Girard, Sylvie",
    "Simard, Mathieu",
    "Boucher, Françoise",
)
COMPANIES = (
    "9123-4567 Québec inc.",
    "Immeubles Saint-Laurent ltée",
    "Construction Bérubé & Fils inc.",
    "Gestion Immobilière Érables inc.",
)
BANKS = (
    "Banque Royale du Canada",
    "Banque Nationale du Canada",
    "Caisse Desjardins du Centre-ville",
    "Banque de Montréal",
    "La Banque Toronto-Dominion",
    "Banque Canadienne Impériale de Commerce",
)
PUBLIC_BODIES = (
    "Hydro-Québec",
    "Bell Canada",
    "Ministère des Transports du Québec",
    "Gaz Métro",
)
NATURE_WEIGHTS = (
    ("Vente", 5),
    ("Hypothèque", 5),
    ("Quittance", 3),
    ("Servitude", 2),
    ("Avis d'adresse", 1),
    ("Donation", 1),
    ("Déclaration de transmission", 1),
    ("Bail", 1),
)


def format_numero(value: int, *, spaced: bool) -> str:
    text = str(value)
    if not spaced:
        return text
    groups = []
    while text:
        groups.insert(0, text[-3:])
        text = text[:-3]
    return " ".join(groups)


@dataclass
class _History:
    owners: list[str]
    open_hypothecs: list[tuple[int, str]] = field(default_factory=list)  # (row index, bank)


def _numero(day: date, rng: random.Random, *, modern: bool) -> str:
    if modern:
        value = 10_000_000 + (day - date(2000, 1, 1)).days * 1500 + rng.randrange(1500)
        return format_numero(value, spaced=True)
    return format_numero(
        40_000 + (day - date(1940, 1, 1)).days * 12 + rng.randrange(12), spaced=False
    )


def _amount(rng: random.Random, low: int, high: int) -> str:
    return f"{format_numero(rng.randrange(low, high) * 1000, spaced=True)} $"


def generate_rows(
    count: int, *, start: date, end: date, modern: bool, rng: random.Random
) -> list[IndexRow]:
    """A coherent chain of inscriptions: owners change hands, hypothecs get discharged."""
    days = sorted(start + timedelta(days=rng.randrange((end - start).days)) for _ in range(count))
    history = _History(owners=[rng.choice(PERSONS)])
    rows: list[dict] = []
    natures = [n for n, _ in NATURE_WEIGHTS]
    weights = [w for _, w in NATURE_WEIGHTS]
    for day in days:
        nature = rng.choices(natures, weights)[0]
        if nature == "Quittance" and not history.open_hypothecs:
            nature = "Hypothèque"
        row: dict = {
            "date": day.isoformat(),
            "numero": _numero(day, rng, modern=modern),
            "nature": nature,
            "remarques": None,
            "radiations": None,
        }
        owner = history.owners[-1]
        if nature == "Vente":
            buyer = rng.choice(PERSONS + COMPANIES)
            row["parties"] = [Party(name=owner, role="Vendeur"), Party(name=buyer, role="Acheteur")]
            row["remarques"] = f"Prix : {_amount(rng, 60, 650)}" if rng.random() < 0.5 else None
            history.owners.append(buyer)
        elif nature == "Hypothèque":
            bank = rng.choice(BANKS)
            row["parties"] = [
                Party(name=owner, role="Débiteur"),
                Party(name=bank, role="Créancier"),
            ]
            row["remarques"] = f"Montant : {_amount(rng, 40, 500)}"
            history.open_hypothecs.append((len(rows), bank))
        elif nature == "Quittance":
            index, bank = history.open_hypothecs.pop(0)
            row["parties"] = [
                Party(name=bank, role="Créancier"),
                Party(name=owner, role="Débiteur"),
            ]
            row["remarques"] = f"Réf. {rows[index]['numero']}"
            rows[index]["radiations"] = row["numero"]
        elif nature == "Servitude":
            body = rng.choice(PUBLIC_BODIES)
            row["parties"] = [
                Party(name=owner, role="Cédant"),
                Party(name=body, role="Bénéficiaire"),
            ]
            row["remarques"] = rng.choice(("Droit de passage", "Ligne électrique", None))
        elif nature == "Avis d'adresse":
            bank = rng.choice(BANKS)
            row["parties"] = [Party(name=bank, role="Créancier")]
            row["remarques"] = f"Avis d'adresse n° {rng.randrange(1000, 99999)}"
        elif nature == "Donation":
            heir = rng.choice(PERSONS)
            row["parties"] = [
                Party(name=owner, role="Donateur"),
                Party(name=heir, role="Donataire"),
            ]
            history.owners.append(heir)
        elif nature == "Déclaration de transmission":
            heir = rng.choice(PERSONS)
            row["parties"] = [
                Party(name=f"Succession {owner}", role="Défunt"),
                Party(name=heir, role="Héritier"),
            ]
            history.owners.append(heir)
        else:
            tenant = rng.choice(COMPANIES + PERSONS)
            row["parties"] = [
                Party(name=owner, role="Locateur"),
                Party(name=tenant, role="Locataire"),
            ]
            row["remarques"] = f"Durée : {rng.choice((5, 10, 15, 25))} ans"
        rows.append(row)
    return [IndexRow(**row) for row in rows]
