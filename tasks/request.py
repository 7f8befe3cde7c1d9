from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tasks.failures import DocumentFailed

SOURCES = ("index", "acte", "plan_cadastraux")
OCR_SOURCES = ("index", "acte")
ACTE_TYPES = ("Acte", "Acte divers", "Avis d'adresse", "Radiation")
DEFAULT_CIRCONSCRIPTION = "Montréal"  # what the seed system assumed when the column is empty
NUMBER_MAX = 30  # characters, spaces removed: registry lot and registration numbers are far shorter
CHOICE_MAX = 120  # characters of a value chosen on the registry's forms (circonscription...)

# The 73 circonscriptions foncières named by the Loi sur la division territoriale (CQLR c. D-11,
# s. 11), plus the former registration divisions a request may still name. Written from that
# list, not read from the registry's live form: the registry's own choices still decide at
# download time, so a name it shows that is missing here must be added here.
CIRCONSCRIPTIONS = (
    "Abitibi", "Argenteuil", "Arthabaska", "Beauce", "Beauharnois", "Bellechasse", "Berthier",
    "Bonaventure 1", "Bonaventure 2", "Brome", "Chambly", "Champlain", "Charlevoix 1",
    "Charlevoix 2", "Châteauguay", "Chicoutimi", "Coaticook", "Compton", "Deux-Montagnes",
    "Dorchester", "Drummond", "Frontenac", "Gaspé", "Gatineau", "Hull", "Huntingdon", "Iberville",
    "Îles-de-la-Madeleine", "Joliette", "Kamouraska", "Labelle", "Lac-Saint-Jean-Est",
    "Lac-Saint-Jean-Ouest", "Laprairie", "L'Assomption", "Laval", "Lévis", "L'Islet",
    "Lotbinière", "Maskinongé", "Matane", "Matapédia", "Mégantic", "Missisquoi", "Montcalm",
    "Montmagny", "Montmorency", "Montréal", "Napierville", "Nicolet", "Papineau", "Pontiac",
    "Portneuf", "Québec", "Richelieu", "Richmond", "Rimouski", "Rivière-du-Loup", "Roberval",
    "Rouville", "Saguenay", "Saint-Hyacinthe", "Saint-Jean", "Sainte-Anne-des-Monts",
    "Sept-Îles", "Shawinigan", "Shefford", "Sherbrooke", "Stanstead", "Témiscamingue",
    "Témiscouata", "Terrebonne", "Thetford", "Trois-Rivières", "Vaudreuil", "Verchères",
)  # fmt: skip


class InvalidRequest(DocumentFailed):
    """A request the registry stage cannot work on; the message says what to fix."""

    permanent = True


@dataclass(frozen=True, kw_only=True)
class Request:
    """What an `extraction_queue` row asks for, checked and normalised (check_request): what
    the registry is asked for, and what the run and its files are named after."""

    document_source: str
    document_number: str  # spaces removed
    circonscription: str
    cadastre: str | None = None
    designation_secondaire: str | None = None
    acte_type: str | None = None

    @property
    def label(self) -> str:
        return f"{self.document_source} {self.document_number} ({self.circonscription})"


def text(row: Mapping[str, Any], column: str) -> str | None:
    """The column's value stripped, None when missing or blank."""
    value = row.get(column)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def check_number(number: str) -> str:
    """The number with its spaces removed, or InvalidRequest when no registry number looks like
    it: the number is typed into the registry's form and names the run and its evidence files."""
    compact = "".join(number.split())
    if len(compact) > NUMBER_MAX:
        raise InvalidRequest(
            f"document_number is {len(compact)} characters long ({compact[:20]!r}...); a registry"
            f" number has at most {NUMBER_MAX}"
        )
    odd = sorted({c for c in compact if not (c.isalnum() or c == "-")})
    if odd:
        raise InvalidRequest(
            f"document_number {compact!r} has characters no registry number has"
            f" ({' '.join(odd)}): only letters, digits, spaces and '-'"
        )
    return compact


def _check_choice(column: str, value: str | None) -> str | None:
    """A value picked among a registry form's options is short; a longer one names the storage
    object and the evidence files for nothing."""
    if value is not None and len(value) > CHOICE_MAX:
        raise InvalidRequest(
            f"{column} is {len(value)} characters long ({value[:20]!r}...); the registry's"
            f" choices have at most {CHOICE_MAX}"
        )
    return value


def check_request(row: Mapping[str, Any], sources: tuple[str, ...] = SOURCES) -> Request:
    """The request a row holds, or InvalidRequest saying what is wrong with it. The claim (for
    rows any program inserted) and `registre queue add` both check with this."""
    source = text(row, "document_source")
    if source not in sources:
        raise InvalidRequest(
            f"document_source {source!r} is not one of {', '.join(sources)}"
            + (" (plans cadastraux are not OCR'd)" if source == "plan_cadastraux" else "")
        )
    number = text(row, "document_number_normalized") or text(row, "document_number")
    if not number:
        raise InvalidRequest(
            "document_number is empty: there is nothing to search the registry for"
        )
    number = check_number(number)
    cadastre = _check_choice("cadastre", text(row, "cadastre"))
    acte_type = text(row, "acte_type")
    if source == "acte":
        if not acte_type:
            raise InvalidRequest(
                f"acte_type is required for an acte (one of {', '.join(ACTE_TYPES)})"
            )
        if acte_type not in ACTE_TYPES:
            raise InvalidRequest(f"acte_type {acte_type!r} is not one of {', '.join(ACTE_TYPES)}")
    elif not cadastre:
        kind = "an index" if source == "index" else "a plan cadastral"
        raise InvalidRequest(f"cadastre is required for {kind} (e.g. 'Cadastre du Québec')")
    circonscription = text(row, "circonscription_fonciere") or DEFAULT_CIRCONSCRIPTION
    return Request(
        document_source=source,
        document_number=number,
        circonscription=_check_choice("circonscription_fonciere", circonscription),
        cadastre=cadastre,
        designation_secondaire=_check_choice(
            "designation_secondaire", text(row, "designation_secondaire")
        ),
        acte_type=acte_type,
    )
