from __future__ import annotations

import dataclasses

import pytest

from tasks.queue.buckets import object_name, parse_supabase_path
from tasks.queue.jobs import Stage, parse_job


def job(source: str, **row):
    base = {
        "id": "1",
        "document_source": source,
        "document_number": "856",
        "circonscription_fonciere": "Shefford",
        "cadastre": "Canton d'Ely",
        "acte_type": "Acte",
        "created_at": "t",
    }
    return parse_job("dev", {**base, **row}, Stage.REGISTRE, "o")


def test_object_names_follow_the_seed_convention():
    assert object_name(job("index"), 1756990434100) == "856-Shefford-Canton_d_Ely-1756990434100.pdf"
    assert object_name(job("acte", document_number="12 345 678"), 5) == "12345678-Shefford-5.pdf"
    plan = job(
        "plan_cadastraux", circonscription_fonciere="Montréal", cadastre="Cadastre du Québec"
    )
    assert object_name(plan, 7) == "856-Montr_al-Cadastre_du_Qu_bec-7.pdf"


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("index/856-Shefford-1.pdf", "index", ("index", "856-Shefford-1.pdf")),
        ("actes/1-M-2.pdf", "acte", ("actes", "1-M-2.pdf")),
        ("1-M-2.pdf", "acte", ("actes", "1-M-2.pdf")),
        ("5-M-C-3.pdf", "plan_cadastraux", ("plans-cadastraux", "5-M-C-3.pdf")),
        (
            "https://abc.supabase.co/storage/v1/object/public/index/856-S-1.pdf",
            "index",
            ("index", "856-S-1.pdf"),
        ),
        (
            "https://abc.supabase.co/storage/v1/object/sign/actes/a%20b.pdf?token=xyz",
            "acte",
            ("actes", "a b.pdf"),
        ),
        (
            "https://abc.supabase.co/storage/v1/object/plans-cadastraux/p.pdf",
            "index",
            ("plans-cadastraux", "p.pdf"),
        ),
    ],
)
def test_every_historical_supabase_path_form_is_read(path, source, expected):
    assert parse_supabase_path(path, source) == expected


def test_a_foreign_url_is_refused():
    with pytest.raises(ValueError, match="not a Supabase Storage URL"):
        parse_supabase_path("https://example.com/file.pdf", "index")


def test_a_number_cannot_make_folders_or_break_urls():
    # parse_job refuses such numbers; the object name is safe whatever the job holds
    acte = job("acte")
    odd = dataclasses.replace(
        acte, request=dataclasses.replace(acte.request, document_number="12/34#5")
    )
    assert object_name(odd, 9) == "12_34_5-Shefford-9.pdf"
