from __future__ import annotations

from html import escape

from sandbox.registry import urls

__all__ = [
    "entry_page",
    "error_block",
    "layout",
    "login_page",
    "options",
    "server_error_page",
    "welcome_page",
]

_DOCTYPE = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" '
    '"http://www.w3.org/TR/html4/loose.dtd">'
)


def layout(title: str, body: str, *, user: str | None = None, stuck: bool = False) -> str:
    session_cell = ""
    if user:
        session_cell = (
            f'<td align="right" class="infoUtils">Utilisateur : <b id="codeUtils">{escape(user)}'
            f'</b> | <a href="{urls.LOGOUT}" class="lienQuitr" title="Fermer la session">'
            "Quitter</a></td>"
        )
    # An image whose response never ends: the load event (and networkidle) never comes.
    never = f'<img src="{urls.STUCK_PIXEL}" width="1" height="1" alt="">' if stuck else ""
    return f"""{_DOCTYPE}
<html lang="fr">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta http-equiv="X-UA-Compatible" content="IE=EmulateIE7">
<title>Registre foncier du Québec en ligne - {escape(title)}</title>
<link rel="stylesheet" type="text/css" href="{urls.CSS}">
</head>
<body bgcolor="#FFFFFF" leftmargin="0" topmargin="0" marginwidth="0" marginheight="0">
<table width="100%" border="0" cellspacing="0" cellpadding="0" class="entete">
<tr><td width="220"><img src="{urls.IMAGES}/logo_quebec.gif" alt="Gouvernement du Québec"
 width="200" height="50" border="0"></td>
<td class="titreSite">Registre foncier du Québec en ligne</td>{session_cell}</tr>
</table>
<table width="780" border="0" cellspacing="0" cellpadding="6" align="center">
<tr><td class="titrePage">{escape(title)}</td></tr>
<tr><td class="contenu">
{body}
</td></tr>
</table>
<table width="100%" class="piedPage"><tr><td align="center">
<font size="1">© Gouvernement du Québec, Ministère des Ressources naturelles et des Forêts</font>
</td></tr></table>
{never}
</body>
</html>
"""


def error_block(message: str) -> str:
    return (
        '<table class="Cadre" width="100%" border="0" cellspacing="0" cellpadding="4">'
        f'<tr><td width="32" valign="top"><img src="{urls.IMAGES}/image_message.gif" '
        'alt="Message" width="24" height="24"></td>'
        f'<td class="contValErr">{escape(message)}</td></tr></table>'
    )


def options(choices: list[tuple[str, str]], selected: str | None) -> str:
    return "\n".join(
        f'<option value="{escape(value)}"{" selected" if value == selected else ""}>'
        f"{escape(label)}</option>"
        for value, label in choices
    )


def entry_page(*, stuck: bool = False) -> str:
    body = f"""<table width="100%" border="0" cellpadding="8">
<tr><td align="center">
<a href="{urls.LOGIN_RELATIVE}"><img src="{urls.IMAGES}/entree_registre.gif"
 alt="Entrée du site - Registre foncier du Québec en ligne" width="300" height="80" border="0"></a>
</td></tr>
<tr><td align="center"><a href="{urls.LOGIN_RELATIVE}" class="lienEntree">Consultez le Registre
 foncier</a></td></tr>
<tr><td><font size="2">Le Registre foncier du Québec en ligne permet la consultation de l'index
des immeubles, des actes et des plans cadastraux publiés dans les bureaux de la publicité des
droits.</font></td></tr>
</table>"""
    return layout("Accueil", body, stuck=stuck)


def login_page(error: str | None = None, *, username: str = "", stuck: bool = False) -> str:
    body = f"""{error_block(error) if error else ""}
<form name="frmIdent" id="frmIdent" method="post" action="{urls.LOGIN}">
<input type="hidden" name="txtEtat" value="valdr">
<input type="hidden" name="txtBoutn" value="btnSoumt">
<input type="hidden" name="txtInAfichQuestIdentPersn" value="N">
<table border="0" cellspacing="0" cellpadding="4" class="formulaire">
<tr><td class="etiqt"><label for="txtVaCodeUtils">Code d'utilisateur</label></td>
<td><input type="text" name="txtVaCodeUtils" id="txtVaCodeUtils" size="20" maxlength="20"
 value="{escape(username)}"></td></tr>
<tr><td class="etiqt"><label for="txtMotPasse">Mot de passe</label></td>
<td><input type="password" name="txtMotPasse" id="txtMotPasse" size="20" maxlength="30"></td></tr>
<tr><td colspan="2" align="center">
<input type="submit" name="btnSoumt" id="btnSoumt" value="Soumettre" class="bouton"></td></tr>
</table>
</form>"""
    return layout("Identification", body, stuck=stuck)


def welcome_page(user: str, *, stuck: bool = False) -> str:
    body = f"""<p>Bienvenue dans le Registre foncier du Québec en ligne.</p>
<table border="0" cellpadding="4" class="menuPrincipal">
<tr><td><a href="{urls.INDEX}">Index des immeubles</a></td></tr>
<tr><td><a href="{urls.ACTE}">Acte (par numéro d'inscription)</a></td></tr>
<tr><td><a href="{urls.PLAN}">Plan cadastral</a></td></tr>
<tr><td><a href="{urls.LOGOUT}" title="Fermer la session">Fermer la session</a></td></tr>
</table>"""
    return layout("Menu principal", body, user=user, stuck=stuck)


def server_error_page() -> str:
    return f"""{_DOCTYPE}
<html><head><title>500 - Erreur interne du serveur.</title></head>
<body><h2>Erreur du serveur dans l'application '/Sirf'.</h2>
<p>Active Server Pages error 'ASP 0147'</p><p>Erreur interne du serveur.</p></body></html>
"""
