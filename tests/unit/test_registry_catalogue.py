from __future__ import annotations

import hashlib
import subprocess
import sys

import pypdfium2 as pdfium
import pytest

from sandbox.registry import catalogue
from tasks.pages.index_rows import NATURES, IndexPage

DIGEST_SCRIPT = """
import hashlib
from sandbox.registry import catalogue
h = hashlib.sha256()
for d in catalogue.INDEX_DOCUMENTS:
    for p in d.pages:
        h.update(p.model_dump_json().encode())
for a in catalogue.ACTES:
    h.update(catalogue.acte_text(a).encode())
h.update(catalogue.index_page_images(catalogue.INDEX_DOCUMENTS[0])[0].tobytes())
print(h.hexdigest())
"""


def test_catalogue_is_the_same_in_every_process():
    here = hashlib.sha256()
    for document in catalogue.INDEX_DOCUMENTS:
        for page in document.pages:
            here.update(page.model_dump_json().encode())
    for acte in catalogue.ACTES:
        here.update(catalogue.acte_text(acte).encode())
    first_page = catalogue.index_page_images(catalogue.INDEX_DOCUMENTS[0])[0]
    here.update(first_page.tobytes())
    there = subprocess.run(
        [sys.executable, "-c", DIGEST_SCRIPT], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert there == here.hexdigest()


def test_catalogue_shape():
    assert 10 <= len(catalogue.INDEX_DOCUMENTS) <= 12
    assert {len(d.pages) for d in catalogue.INDEX_DOCUMENTS} == {1, 2, 3, 4}
    assert len([a for a in catalogue.ACTES if not a.paper_only]) >= 10
    assert len(catalogue.PLANS) == 4
    names = {c.name for c in catalogue.CIRCONSCRIPTIONS}
    assert {"Montréal", "Québec", "Trois-Rivières", "Saint-Hyacinthe", "Shefford"} <= names
    shefford = catalogue.circonscription_by_name("Shefford")
    assert "Canton d'Ely" in {c.name for c in shefford.cadastres}
    for circ in catalogue.CIRCONSCRIPTIONS:
        assert circ.cadastres[0].code == "000001"
    assert any(not a.active for a in catalogue.ACCOUNTS)
    assert len({a.username for a in catalogue.ACCOUNTS if a.active}) >= 3


def test_index_rows_use_the_product_data_model():
    for document in catalogue.INDEX_DOCUMENTS:
        for page in document.pages:
            assert isinstance(page, IndexPage)
            assert page.circonscription == document.circonscription
            assert 5 <= len(page.rows) <= 8
            for row in page.rows:
                assert row.nature in NATURES
                assert row.parties and row.numero and row.date


def test_radiations_point_at_a_later_quittance():
    rows = [r for d in catalogue.INDEX_DOCUMENTS for p in d.pages for r in p.rows]
    numeros = {r.numero: r for r in rows}
    radiated = [r for r in rows if r.radiations]
    assert radiated
    for row in radiated:
        assert numeros[row.radiations].nature == "Quittance"


@pytest.mark.parametrize("doc_id", ["IDX-001", "IDX-004"])
def test_index_pdf_pages_are_the_page_images(doc_id):
    document = catalogue.document_by_id(doc_id)
    images = catalogue.index_page_images(document)
    assert len(images) == len(document.pages)
    pdf = pdfium.PdfDocument(catalogue.render_pdf(document))
    assert len(pdf) == len(images)
    assert pdf[0].get_textpage().get_text_range().strip() == ""
    assert images[0].width > images[0].height  # landscape register


def test_acte_pdf_text_layer_is_acte_text():
    for acte in [a for a in catalogue.ACTES if not a.paper_only][:3]:
        pdf = pdfium.PdfDocument(catalogue.render_pdf(acte))
        text = "\n".join(p.get_textpage().get_text_range() for p in pdf)
        for line in catalogue.acte_text(acte).splitlines():
            assert line in text.replace("\r\n", "\n")


def test_paper_only_actes_have_no_pdf():
    paper = next(a for a in catalogue.ACTES if a.paper_only)
    with pytest.raises(ValueError, match="paper only"):
        catalogue.render_pdf(paper)


def test_finders():
    index = catalogue.find_index("Montréal", "Cadastre du Québec", "2274178")
    assert index is not None and index.lot == "2 274 178"
    assert catalogue.find_index("Shefford", "Canton d'Ely", "15-2") is None  # needs a rang
    assert catalogue.find_index("Shefford", "Canton d'Ely", "15-2", "Rang 4").id == "IDX-010"
    acte = catalogue.ACTES[0]
    assert catalogue.find_acte(acte.circonscription, acte.type_document, acte.numero) == [acte]
    plan = catalogue.find_plan("Montréal", "Cadastre du Québec", " 2 274 178")
    assert plan is not None and [v.date for v in plan.versions] == sorted(
        v.date for v in plan.versions
    )
    assert catalogue.lot_circonscriptions("Cadastre du Québec", "1478325") == {"Québec"}
