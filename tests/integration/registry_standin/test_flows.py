from __future__ import annotations

import pypdfium2 as pdfium
import pytest

from sandbox.registry import catalogue, control, urls

pytestmark = pytest.mark.timeout(90)


def pdf_text(data: bytes) -> tuple[int, str]:
    pdf = pdfium.PdfDocument(data)
    text = "\n".join(p.get_textpage().get_text_range() for p in pdf)
    return len(pdf), text


def test_entry_login_and_logout(site, registry):
    """The entry link leads to the labelled login form; success shows a logout link."""
    site.page.goto(site.url(urls.ENTRY))
    assert site.page.locator('img[alt*="Registre foncier"]').count() == 1
    site.login("agent02")
    assert site.page.url.endswith(urls.WELCOME)
    assert site.page.get_by_role("link", name="Quitter").is_visible()
    assert site.page.get_by_role("link", name="Fermer la session").is_visible()
    cookies = {c["name"] for c in site.page.context.cookies()}
    assert "ASPSESSIONIDSIRF" in cookies
    site.page.get_by_role("link", name="Quitter").click()
    site.page.goto(site.url(urls.INDEX))
    assert site.page.url == site.url(urls.ENTRY)
    assert control.counters(registry)["logins"] == {"agent02": 1}


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("agent01", "wrong", "mot de passe est invalide"),
        ("nobody", "Sirf-2024-a", "mot de passe est invalide"),
        ("ancien01", "Sirf-2019-z", "désactivé"),
    ],
)
def test_login_failures_show_an_error(site, registry, username, password, message):
    site.login(username, password)
    assert message in site.error_text()
    assert site.page.url.endswith(urls.LOGIN)
    assert control.counters(registry)["login_failures"] == {username: 1}


def test_search_pages_redirect_to_entry_without_session(site):
    for path in (urls.INDEX, urls.ACTE, urls.PLAN, urls.PLAN_SELECT, urls.CONFIRM):
        site.page.goto(site.url(path))
        assert site.page.url == site.url(urls.ENTRY)


def test_selects_reload_the_form_and_repopulate(site):
    """Choosing a circonscription, then a cadastre, reloads the page: old handles go stale."""
    site.login()
    site.page.goto(site.url(urls.INDEX))
    assert site.page.locator("#selCadst option").count() == 1
    stale = site.page.query_selector("#selCadst")
    site.select_reloading("#selCircnFoncr", "44")
    with pytest.raises(Exception, match=r"context was destroyed|not attached"):
        stale.evaluate("e => e.options.length")
    labels = site.page.locator("#selCadst option").all_inner_texts()
    assert "Canton d'Ely" in labels and "Cadastre du Québec" in labels
    assert (
        site.page.locator("#selCadst option[value='000001']").inner_text() == "Cadastre du Québec"
    )
    with site.page.expect_navigation():
        site.page.select_option("#selCadst", label="Canton d'Ely")
    designations = site.page.locator("#selDesgnSecnd option")
    assert designations.first.get_attribute("value") == "000000"
    assert "Rang 3" in designations.all_inner_texts()
    assert site.page.locator("#selCircnFoncr").input_value() == "44"


@pytest.mark.parametrize("mode", ["attachment", "inline"])
def test_index_document_downloads_as_scanned_pdf(site, registry, mode):
    control.set_faults(registry, download_mode=mode)
    document = catalogue.find_index("Shefford", "Canton d'Ely", "15-2", "Rang 3")
    site.login()
    site.lot_search(urls.INDEX, "44", "000441", "15-2", designation="Rang 3")
    assert "Docmn" in site.page.url
    assert {f.name for f in site.page.frames} >= {"menu", "page"}
    data = site.download_attachment() if mode == "attachment" else site.download_inline()
    pages, text = pdf_text(data)
    assert pages == len(document.pages)
    assert text.strip() == ""  # scanned images only: hence the OCR
    assert control.counters(registry)["downloads_by_document"][document.id] >= 1


def test_long_index_goes_through_confirmation(site):
    site.login()
    site.lot_search(urls.INDEX, "60", "000001", " 1 652 901")
    assert "confr_demnd" in site.page.url
    site.page.click("#btnConfr")
    site.page.wait_for_load_state()
    pages, _ = pdf_text(site.download_attachment())
    assert pages == 4


def test_acte_exact_number_opens_the_document_with_a_text_layer(site):
    acte = catalogue.ACTES[0]
    site.login()
    site.acte_search("66", acte.type_document, acte.numero.replace(" ", ""))
    assert site.page.frame(name="page") is not None or "Docmn" in site.page.url
    pages, text = pdf_text(site.download_attachment())
    assert pages == 1
    assert acte.numero in text
    for party in acte.parties:
        assert party.name in text
    assert "DESCRIPTION DE LA PROPRIÉTÉ" in text


def test_acte_similar_numbers_list_marks_paper_only_rows(site, registry):
    acte = catalogue.ACTES[0]
    near = str(int(acte.numero.replace(" ", "")) + 2)
    site.login()
    site.acte_search("66", "Acte", near, path=urls.ACTE_FALLBACK)
    assert "numéro est semblable" in site.error_text()
    assert site.page.get_by_text("Résultat de la recherche").first.is_visible()
    rows = site.page.locator("table.tablResl tr:has(input[type=radio])")
    assert rows.count() == 2
    assert rows.nth(0).locator("img[src*='BPD.GIF']").count() == 1
    electronic = site.page.locator(
        "table.tablResl tr:has(input[type=radio]):not(:has(img[src*='BPD.GIF']))"
    )
    electronic.first.locator("input[type=radio]").check()
    site.page.click("input[value*=Soumettre]")
    site.page.wait_for_load_state()
    _, text = pdf_text(site.download_attachment())
    assert acte.numero in text
    assert control.counters(registry)["downloads_by_document"] == {acte.id: 1}


def test_acte_paper_only_choice_is_refused(site):
    twin = next(a for a in catalogue.ACTES if a.id == "ACT-P02")
    site.login()
    site.acte_search("66", twin.type_document, twin.numero)
    site.page.locator("table.tablResl tr:has(img[src*='BPD.GIF']) input[type=radio]").check()
    site.page.click("input[value*=Soumettre]")
    site.page.wait_for_load_state()
    assert "support papier" in site.error_text()


def test_plan_inactive_notice_selection_and_confirmation(site, registry):
    plan = catalogue.find_plan("Shefford", "Canton d'Ely", "15-2", "Rang 3")
    site.login()
    site.lot_search(urls.PLAN, "44", "000441", "15-2", designation="Rang 3")
    assert "selct_plan_cadst" in site.page.url
    assert "est inactif" in site.error_text()
    radios = site.page.locator("input[type=radio]")
    assert radios.count() == len(plan.versions)
    radios.last.check()
    site.page.click("input[value*=Soumettre]")
    site.page.wait_for_load_state()
    assert "confr_demnd" in site.page.url
    assert site.page.locator("#btnConfr").get_attribute("value") == "Confirmer"
    site.page.click("#btnConfr")
    site.page.wait_for_load_state()
    pages, _ = pdf_text(site.download_attachment())
    assert pages == 1
    latest = plan.versions[-1].id
    assert control.counters(registry)["downloads_by_document"] == {latest: 1}
