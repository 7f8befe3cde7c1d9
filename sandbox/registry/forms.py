from __future__ import annotations

from dataclasses import dataclass
from html import escape

from sandbox.registry import urls
from sandbox.registry.catalogue import ACTE_TYPES, CIRCONSCRIPTIONS
from sandbox.registry.pages import error_block, options
from sandbox.registry.records import Acte, Circonscription, Plan

__all__ = ["LotForm", "acte_form", "acte_results", "confirm_page", "lot_form", "plan_selection"]

EMPTY_DESIGNATION = "000000"
NO_CHOICE = "NULL"

# Any change of these selects posts the form back (txtEtat=rechg) and the page reloads with
# the dependent options filled in, as the real site does; handles held across it go stale.
_RELOAD_SCRIPT = """<script type="text/javascript">
function fRechg(oForm) {
  oForm.txtEtat.value = "rechg";
  oForm.submit();
}
</script>"""


@dataclass
class LotForm:
    circonscription: Circonscription | None = None
    cadastre_code: str = NO_CHOICE
    lot: str = ""
    designation_code: str = EMPTY_DESIGNATION


def _circ_choices() -> list[tuple[str, str]]:
    return [(NO_CHOICE, "")] + [(c.code, c.name) for c in CIRCONSCRIPTIONS]


def lot_form(form: LotForm, *, action: str, index: bool, message: str | None) -> str:
    """The index des immeubles and plan cadastral search form (same fields)."""
    circ = form.circonscription
    cadastres = [(NO_CHOICE, "")] + [(c.code, c.name) for c in (circ.cadastres if circ else ())]
    cadastre = (
        next((c for c in circ.cadastres if c.code == form.cadastre_code), None) if circ else None
    )
    designations = [(EMPTY_DESIGNATION, "")] + [
        (d.code, d.name) for d in (cadastre.designations if cadastre else ())
    ]
    order = ""
    if index:
        order = """<tr><td class="etiqt">Ordre d'affichage</td><td>
<input type="radio" name="rdOrdreAffch" id="rdOrdreAffchC" value="C" checked>
<label for="rdOrdreAffchC">Chronologique</label>
<input type="radio" name="rdOrdreAffch" id="rdOrdreAffchA" value="A">
<label for="rdOrdreAffchA">Antichronologique</label></td></tr>"""
    return f"""{_RELOAD_SCRIPT}
{error_block(message) if message else ""}
<form name="frmRechr" id="frmRechr" method="post" action="{action}">
<input type="hidden" name="txtEtat" value="valdr">
<table border="0" cellspacing="0" cellpadding="4" class="formulaire">
<tr><td class="etiqt"><label for="selCircnFoncr">Circonscription foncière</label></td>
<td><select name="selCircnFoncr" id="selCircnFoncr" onchange="fRechg(this.form)">
{options(_circ_choices(), circ.code if circ else NO_CHOICE)}
</select></td></tr>
<tr><td class="etiqt"><label for="selCadst">Cadastre</label></td>
<td><select name="selCadst" id="selCadst" onchange="fRechg(this.form)">
{options(cadastres, cadastre.code if cadastre else NO_CHOICE)}
</select></td></tr>
<tr><td class="etiqt"><label for="txtNumrtLot">Numéro de lot</label></td>
<td><input type="text" name="txtNumrtLot" id="txtNumrtLot" size="20" maxlength="20"
 value="{escape(form.lot)}"></td></tr>
<tr><td class="etiqt"><label for="selDesgnSecnd">Désignation secondaire</label></td>
<td><select name="selDesgnSecnd" id="selDesgnSecnd">
{options(designations, form.designation_code)}
</select></td></tr>
{order}
<tr><td colspan="2" align="center">
<input type="submit" name="btnSoumt" id="btnSoumt" value="Soumettre" class="bouton"></td></tr>
</table>
</form>"""


def acte_form(
    *, action: str, circ_code: str, type_code: str, numero: str, message: str | None
) -> str:
    return f"""{error_block(message) if message else ""}
<form name="frmReqst" id="frmReqst" method="post" action="{action}">
<input type="hidden" name="txtEtat" value="valdr">
<table border="0" cellspacing="0" cellpadding="4" class="formulaire">
<tr><td class="etiqt"><label for="selCircnFoncr">Circonscription foncière</label></td>
<td><select name="selCircnFoncr" id="selCircnFoncr">
{options(_circ_choices(), circ_code)}
</select></td></tr>
<tr><td class="etiqt"><label for="selTypeDocmn">Type de document</label></td>
<td><select name="selTypeDocmn" id="selTypeDocmn">
{options(list(ACTE_TYPES.items()), type_code)}
</select></td></tr>
<tr><td class="etiqt"><label for="txtNoReqst">Numéro d'inscription</label></td>
<td><input type="text" name="txtNoReqst" id="txtNoReqst" size="20" maxlength="20"
 value="{escape(numero)}"></td></tr>
<tr><td colspan="2" align="center">
<input type="submit" name="btnRechr" id="btnRechr" value="Rechercher" class="bouton"></td></tr>
</table>
</form>"""


def acte_results(actes: list[Acte], *, notice: str | None) -> str:
    rows = []
    for n, acte in enumerate(actes, 1):
        support = (
            f'<img src="{urls.IMAGES}/BPD.GIF" alt="Document papier" title="Disponible sur '
            'support papier seulement" width="16" height="16">'
            if acte.paper_only
            else f'<img src="{urls.IMAGES}/PDF.GIF" alt="Document numérique" width="16">'
        )
        rows.append(
            f'<tr><td><input type="radio" name="rdDocmn" id="rdDocmn{n}" value="{acte.id}"></td>'
            f"<td>{escape(acte.numero)}</td><td>{acte.date}</td><td>{escape(acte.nature)}</td>"
            f"<td>{escape(acte.type_document)}</td><td>{escape(acte.circonscription)}</td>"
            f'<td align="center">{support}</td></tr>'
        )
    return f"""{error_block(notice) if notice else ""}
<form name="frmSelctDocmn" id="frmSelctDocmn" method="post" action="{urls.ACTE_SELECT}">
<table width="100%" border="0"><tr><td class="titrTabl">Résultat de la recherche</td></tr></table>
<table class="tablResl" width="100%" border="1" cellspacing="0" cellpadding="3"
 summary="Résultat de la recherche">
<tr class="entetTabl"><th>&nbsp;</th><th>Numéro d'inscription</th><th>Date de présentation</th>
<th>Nature</th><th>Type de document</th><th>Circonscription foncière</th><th>Support</th></tr>
{"".join(rows)}
</table>
<p align="center">
<input type="submit" name="btnSoumt" id="btnSoumt" value="Soumettre" class="bouton"></p>
</form>"""


def plan_selection(plan_key: str, plan: Plan, *, notice: str | None) -> str:
    rows = "".join(
        f'<tr><td><input type="radio" name="rdPlan" id="rdPlan{n}" value="{v.id}"></td>'
        f"<td>{v.date}</td><td>{escape(v.numero)}</td><td>{escape(v.lot)}</td>"
        f"<td>{escape(v.cadastre)}</td></tr>"
        for n, v in enumerate(plan.versions, 1)
    )
    return f"""{error_block(notice) if notice else ""}
<form name="frmSelctPlan" id="frmSelctPlan" method="post" action="{urls.PLAN_SELECT}">
<input type="hidden" name="NoPlan" value="{plan_key}">
<table class="tablResl" width="100%" border="1" cellspacing="0" cellpadding="3"
 summary="Plans cadastraux">
<tr class="entetTabl"><th>&nbsp;</th><th>Date du plan</th><th>Minute</th><th>Lot</th>
<th>Cadastre</th></tr>
{rows}
</table>
<p align="center">
<input type="submit" name="btnSoumt" id="btnSoumt" value="Soumettre" class="bouton"></p>
</form>"""


def confirm_page(doc_id: str, title: str, pages: int) -> str:
    return f"""<p>Le document demandé ({escape(title)}) comporte {pages} page(s).
Des frais de consultation s'appliquent. Veuillez confirmer votre demande.</p>
<form name="frmConfr" id="frmConfr" method="post" action="{urls.CONFIRM}">
<input type="hidden" name="NoDocmn" value="{doc_id}">
<p align="center">
<input type="submit" name="btnConfr" id="btnConfr" value="Confirmer" class="bouton">
<input type="submit" name="btnAnnl" id="btnAnnl" value="Annuler" class="bouton"></p>
</form>"""
