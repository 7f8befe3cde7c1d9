from __future__ import annotations

import re

import pytest

from sandbox.registry.catalogue import CIRCONSCRIPTIONS as STAND_IN_CIRCONSCRIPTIONS
from tasks.queue.jobs import InvalidJob, Stage, parse_job
from tasks.registry.evidence import LABEL_MAX, _stem
from tasks.registry.matching import check_circonscription
from tasks.request import (
    CIRCONSCRIPTIONS,
    InvalidRequest,
    check_request,
)

INDEX = {"document_source": "index", "document_number": "2 274 178",
         "circonscription_fonciere": "Shefford", "cadastre": "Cadastre du Québec"}  # fmt: skip
ACTE = {"document_source": "acte", "document_number": "12 345 678",
        "circonscription_fonciere": "Montréal", "acte_type": "Acte"}  # fmt: skip

# (what, row, the start of the message) : the bad-input corpus of tests/e2e/flows/test_bad_input.py
BAD = [
    ("unknown source", {**INDEX, "document_source": "deed"},
     "document_source 'deed' is not one of index, acte, plan_cadastraux"),
    ("no source", {**INDEX, "document_source": None}, "document_source None is not one of"),
    ("empty number", {**INDEX, "document_number": "  "}, "document_number is empty"),
    ("missing number", {**INDEX, "document_number": None}, "document_number is empty"),
    ("path characters", {**INDEX, "document_number": "../../etc/passwd"},
     "document_number '../../etc/passwd' has characters no registry number has (. /)"),
    ("5,000 characters", {**ACTE, "document_number": "7" * 5000},
     "document_number is 5000 characters long ('77777777777777777777'...); a registry number"
     " has at most 30"),
    ("acte without its type", {**ACTE, "acte_type": None},
     "acte_type is required for an acte (one of Acte, Acte divers, Avis d'adresse, Radiation)"),
    ("unknown acte type", {**ACTE, "acte_type": "Bail"}, "acte_type 'Bail' is not one of"),
    ("index without cadastre", {**INDEX, "cadastre": ""}, "cadastre is required for an index"),
    ("plan without its cadastre", {**INDEX, "document_source": "plan_cadastraux", "cadastre": None},
     "cadastre is required for a plan cadastral (e.g. 'Cadastre du Québec')"),
    ("5,000-character cadastre", {**INDEX, "cadastre": "C" * 5000},
     "cadastre is 5000 characters long"),
    ("5,000-character circonscription", {**INDEX, "circonscription_fonciere": "é" * 5000},
     "circonscription_fonciere is 5000 characters long"),
    ("5,000-character designation", {**INDEX, "designation_secondaire": "x" * 5000},
     "designation_secondaire is 5000 characters long"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "row", "message"), BAD, ids=[b[0] for b in BAD])
def test_the_claim_and_queue_add_refuse_a_bad_request_with_the_same_message(what, row, message):
    with pytest.raises(InvalidRequest) as refused:
        check_request(row)
    with pytest.raises(InvalidJob) as claimed:
        parse_job("prod", {"id": "x", **row}, Stage.REGISTRE, "owner")
    assert str(refused.value).startswith(message), what
    assert str(claimed.value) == str(refused.value)


def test_a_good_request_comes_back_normalised():
    request = check_request({**INDEX, "designation_secondaire": "  ", "cadastre": " CQ "})
    assert request.document_number == "2274178" and request.cadastre == "CQ"
    assert request.designation_secondaire is None and request.circonscription == "Shefford"
    assert check_request({**ACTE, "circonscription_fonciere": None}).circonscription == "Montréal"


def test_the_ocr_stage_names_why_a_plan_is_refused():
    plan = {**INDEX, "document_source": "plan_cadastraux", "supabase_path": "p.pdf"}
    with pytest.raises(InvalidJob, match="plans cadastraux are not OCR'd"):
        parse_job("prod", {"id": "x", **plan}, Stage.OCR, "owner")


@pytest.mark.parametrize(
    ("typed", "listed"),
    [("Montreal", "Montréal"), ("  QUÉBEC ", "Québec"), ("St-Hyacinthe", "Saint-Hyacinthe"),
     ("trois rivieres", "Trois-Rivières"), ("Lac St-Jean Est", "Lac-Saint-Jean-Est"),
     ("Iles-de-la-Madeleine", "Îles-de-la-Madeleine"), ("Sherbroke", "Sherbrooke")],
)  # fmt: skip
def test_a_circonscription_is_recognised_as_the_registry_form_matches_it(typed, listed):
    assert check_circonscription(typed) == listed


def test_an_unknown_circonscription_is_refused_with_the_names_it_may_have_meant():
    with pytest.raises(InvalidRequest) as refused:
        check_circonscription("Atlantide")
    message = str(refused.value)
    assert message.startswith("circonscription_fonciere 'Atlantide' is not a circonscription")
    assert "Abitibi, Argenteuil, Arthabaska" in message and "--help" in message
    with pytest.raises(InvalidRequest):
        check_circonscription("")


def test_every_circonscription_of_the_registry_stand_in_is_listed():
    assert {check_circonscription(c.name) for c in STAND_IN_CIRCONSCRIPTIONS} == {
        c.name for c in STAND_IN_CIRCONSCRIPTIONS
    }
    assert len(set(CIRCONSCRIPTIONS)) == len(CIRCONSCRIPTIONS)


def test_evidence_file_names_stay_bounded_whatever_the_row_holds():
    stem = _stem("prod-index-" + "../" * 3000 + "\u00e9" * 2000)
    assert len(stem.encode()) <= LABEL_MAX + 20  # the label, "_" and the milliseconds
    assert re.fullmatch(r"[A-Za-z0-9_-]+", stem)
