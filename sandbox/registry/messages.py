from __future__ import annotations

# The registry's own wording (DOMAIN.md §2.8); drivers match on these texts.
INDEX_NOT_FOUND = "La fiche immobilière demandée est inexistante."
NO_MATCH = "Aucune information ne correspond aux critères de sélection."
ACTE_NOT_FOUND = "Le document demandé est inexistant."
LOT_ELSEWHERE = "Le lot n'existe pas dans la circonscription foncière demandée."
LOT_INACTIVE = "Le lot {lot} est inactif."
SIMILAR_NUMBERS = (
    "Nous vous proposons une liste de document(s) dont le numéro est semblable à celui demandé."
)
BAD_CIRCONSCRIPTION = "La circonscription foncière sélectionnée est invalide."
LOT_REQUIRED = "Le numéro de lot est obligatoire."
NUMERO_REQUIRED = "Le numéro d'inscription est obligatoire."
PAPER_ONLY = (
    "Ce document n'est disponible que sur support papier au bureau de la publicité des droits."
)
CHOOSE_DOCUMENT = "Vous devez sélectionner un document."
CHOOSE_PLAN = "Vous devez sélectionner un plan."
BAD_LOGIN = "Le code d'utilisateur ou le mot de passe est invalide."
ACCOUNT_DISABLED = (
    "Ce code d'utilisateur a été désactivé. Communiquez avec le Registre foncier du Québec."
)
