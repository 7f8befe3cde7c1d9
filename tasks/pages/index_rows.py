from __future__ import annotations

from pydantic import BaseModel, Field

# The fixed list of deed natures an index row's nature must come from (DOMAIN.md §3.2).
NATURES: tuple[str, ...] = (
    "Vente",
    "Hypothèque",
    "Hypothèque légale",
    "Servitude",
    "Quittance",
    "Mainlevée",
    "Donation",
    "Bail",
    "Avis d'adresse",
    "Déclaration de copropriété",
    "Préavis d'exercice d'un droit hypothécaire",
    "Cession",
    "Cession de rang",
    "Échange",
    "Dation en paiement",
    "Jugement",
    "Déclaration de transmission",
    "Déclaration de résidence familiale",
    "Avis de préavis",
    "Avis de clôture",
    "Acte de correction",
    "Promesse de vente",
    "Droit de premier refus",
    "Bornage",
    "Procès-verbal de bornage",
    "Dépôt de plan",
    "Consentement",
    "Renonciation",
    "Expropriation",
    "Avis d'expropriation",
    "Réserve pour fins publiques",
    "Subrogation",
    "Cession de créance",
    "Cession de loyers",
    "Bail emphytéotique",
    "Modification d'hypothèque",
    "Prorogation",
    "Radiation",
    "Mutation",
    "Avis de vente pour taxes",
    "Vente pour taxes",
    "Certificat de vente pour taxes",
    "Retrait",
    "Retrait pour taxes",
    "Déclaration d'emphytéose",
    "Transfert",
    "Déclaration d'usufruit",
    "Constitution d'usufruit",
    "Avis de contamination",
    "Avis de décontamination",
    "Restriction à l'utilisation",
    "Droit d'usage",
    "Avis de droits",
    "Délaissement",
    "Prise en paiement",
    "Reprise de possession",
    "Résolution",
    "Rétrocession",
    "Fusion",
    "Autre",
)


class Party(BaseModel):
    name: str
    role: str | None = Field(None, description="Qualité: Vendeur, Acheteur, Créancier, Débiteur...")


class IndexRow(BaseModel):
    """One inscription of an index des immeubles page."""

    date: str | None = Field(None, description="Date de présentation, YYYY-MM-DD")
    numero: str = Field(description="Numéro d'inscription / de publication")
    nature: str = Field(description="Nature de l'acte, one of NATURES")
    parties: list[Party] = Field(default_factory=list)
    remarques: str | None = None
    radiations: str | None = Field(None, description="Radiation number, e.g. T12345")


class IndexPage(BaseModel):
    """One page of an index des immeubles document, read into data."""

    template: str = Field(
        description="Old 1 | Old 2 | Old 3 | Modern-Inscription | Modern-Radiation"
    )
    circonscription: str | None = None
    cadastre: str | None = None
    lot: str | None = None
    rows: list[IndexRow] = Field(default_factory=list)
