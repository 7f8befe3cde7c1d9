from __future__ import annotations

from html import escape

from sandbox.registry import urls
from sandbox.registry.documents import acte_text
from sandbox.registry.records import Acte, Document, IndexDocument

__all__ = ["document_title", "frameset", "menu_frame", "page_count", "page_frame"]


def document_title(document: Document) -> str:
    if isinstance(document, IndexDocument):
        return f"Index des immeubles, lot {document.lot}, {document.cadastre}"
    if isinstance(document, Acte):
        return f"{document.type_document} {document.numero}"
    return f"Plan cadastral, lot {document.lot}, {document.date}"


def page_count(document: Document) -> int:
    return len(document.pages) if isinstance(document, IndexDocument) else 1


def frameset(doc_id: str) -> str:
    return f"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Frameset//EN"
 "http://www.w3.org/TR/html4/frameset.dtd">
<html lang="fr">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>Registre foncier du Québec en ligne - Consultation d'un document</title>
</head>
<frameset rows="64,*" frameborder="0" border="0" framespacing="0">
<frame name="menu" id="menu" src="{urls.MENU_FRAME}?NoDocmn={doc_id}" scrolling="no" noresize>
<frame name="page" id="page" src="{urls.PAGE_FRAME}?NoDocmn={doc_id}">
<noframes><body>Votre fureteur doit supporter les cadres.</body></noframes>
</frameset>
</html>
"""


def menu_frame(doc_id: str, title: str) -> str:
    return f"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<html lang="fr">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<link rel="stylesheet" type="text/css" href="{urls.CSS}">
<script type="text/javascript">
function fRechrDocmnPDF() {{ window.status = "Préparation du document..."; return true; }}
</script>
</head>
<body class="menu" leftmargin="0" topmargin="0">
<table width="100%" border="0" cellspacing="0" cellpadding="4" class="menu">
<tr>
<td class="menuBoutnGauch"><a href="{urls.WELCOME}" target="_top">Nouvelle recherche</a></td>
<td class="menuTitre">{escape(title)}</td>
<td class="menuBoutnCentr fondOrang"><a href="{urls.SAVE}?NoDocmn={doc_id}" target="page"
 title="Sauvegarder ou imprimer le document" onmouseup="fRechrDocmnPDF()">Sauvegarder</a></td>
<td class="menuBoutnDroit"><a href="{urls.LOGOUT}" target="_top"
 title="Fermer la session">Quitter</a></td>
</tr>
</table>
</body>
</html>
"""


def page_frame(document: Document) -> str:
    if isinstance(document, Acte):
        content = f'<pre class="textDocmn">{escape(acte_text(document))}</pre>'
    else:
        content = "".join(
            f'<p><img src="{urls.PAGE_IMAGE}?NoDocmn={document.id}&amp;page={n}" '
            f'width="825" alt="Page {n}"></p>'
            for n in range(1, page_count(document) + 1)
        )
    return f"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<html lang="fr">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>{escape(document_title(document))}</title>
</head>
<body bgcolor="#808080">
<div align="center" class="Docmn">{content}</div>
</body>
</html>
"""
