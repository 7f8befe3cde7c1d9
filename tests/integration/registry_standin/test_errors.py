from __future__ import annotations

import pytest

from sandbox.registry import catalogue, urls

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize(
    ("path", "circ", "cadastre", "lot", "designation", "message"),
    [
        # an index lot nobody registered
        (
            urls.INDEX,
            "66",
            "000001",
            "9 999 999",
            "",
            "La fiche immobilière demandée est inexistante",
        ),
        # the lot exists, but in Québec
        (
            urls.INDEX,
            "66",
            "000001",
            "1 478 325",
            "",
            "Le lot n'existe pas dans la circonscription",
        ),
        # right lot, wrong désignation secondaire
        (urls.INDEX, "44", "000441", "15-2", "Rang 1", "Aucune information ne correspond"),
        (urls.PLAN, "54", "000001", "3 405 226", "", "Aucune information ne correspond"),
        (urls.PLAN, "23", "000001", "2 274 178", "", "Le lot n'existe pas dans la circonscription"),
    ],
)
def test_lot_search_errors(site, path, circ, cadastre, lot, designation, message):
    site.login()
    site.lot_search(path, circ, cadastre, lot, designation=designation)
    assert message in site.error_text()
    assert site.page.url.endswith(path)
    # The form comes back filled in, ready for another try.
    assert site.page.locator("#selCircnFoncr").input_value() == circ


def test_invalid_circonscription(site):
    site.login()
    site.page.goto(site.url(urls.INDEX))
    site.page.click("input[value*=Soumettre]")
    assert "circonscription foncière sélectionnée est invalide" in site.error_text()


def test_acte_not_found_and_wrong_type(site):
    acte = catalogue.ACTES[0]
    site.login()
    site.acte_search("66", "Acte", "1")
    assert "Le document demandé est inexistant" in site.error_text()
    site.acte_search("66", "Radiation", acte.numero)
    assert "Aucune information ne correspond aux critères de sélection" in site.error_text()


def test_error_markup_matches_the_old_site(site):
    """An error is a table.Cadre with the message icon and the text in td.contValErr."""
    site.login()
    site.acte_search("66", "Acte", "1")
    frame = site.page.locator("table.Cadre:has(img[src*='image_message.gif'])")
    assert frame.count() == 1
    assert frame.locator("td.contValErr").count() == 1
