from __future__ import annotations

from typing import NamedTuple


class StatusMap(NamedTuple):
    """`extraction_queue.status_id` values, for one of the two mappings real databases use."""

    waiting: int  # EN_ATTENTE: waiting for download
    processing: int  # EN_TRAITEMENT: download in progress
    ready_for_ocr: int  # COMPLETE: PDF in Storage, waiting for OCR
    ocr_processing: int  # OCR in progress
    done: int  # OCR written (or a plan, which skips OCR)
    error: int  # attempts exhausted or a permanent error


# The seed system's ids. OCR in progress shares 2 with downloads: the lease stage tells them apart.
SEED = StatusMap(waiting=1, processing=2, ready_for_ocr=3, ocr_processing=2, done=4, error=5)
# The NotaFlow database's canonical ids (DOMAIN.md §1.2).
NOTAFLOW = StatusMap(waiting=1, processing=2, ready_for_ocr=3, ocr_processing=6, done=5, error=4)

MAPPINGS = {"seed": SEED, "notaflow": NOTAFLOW}

# The ids of a row that can still change under either mapping (all but done and error, 4 and 5 in
# both). The steady-state migration names them literally in its partial indexes and functions.
LIVE = (1, 2, 3, 6)

# The names `extraction_status` carries for each mapping; a fresh database gets the seed ones.
NAMES = {
    "seed": {1: "En attente", 2: "En traitement", 3: "Complété", 4: "OCR complété", 5: "Erreur"},
    "notaflow": {
        1: "En attente",
        2: "En traitement",
        3: "Complété",
        4: "Erreur",
        5: "Extraction Complété",
        6: "OCR en traitement",
    },
}


# What each role of StatusMap is called on an operator's screen.
LABELS = {
    "waiting": "waiting",
    "processing": "downloading",
    "ready_for_ocr": "ready for OCR",
    "ocr_processing": "OCR in progress",
    "done": "done",
    "error": "error",
}


def status_map(name: str) -> StatusMap:
    return MAPPINGS[name]


def status_label(statuses: StatusMap, status_id: int) -> str:
    """What the id means under `statuses`: "ready for OCR", "downloading or OCR in progress" (the
    seed ids share 2), or "unknown status 9" for an id no stage of ours uses."""
    roles = [LABELS[role] for role, value in statuses._asdict().items() if value == status_id]
    return " or ".join(roles) if roles else f"unknown status {status_id}"
