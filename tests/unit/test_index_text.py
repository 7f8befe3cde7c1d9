from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tasks.pages.index_rows import NATURES, IndexPage, IndexRow, Party
from tasks.pages.index_text import format_pages, parse_pages

# Cell text as a register holds it: no line breaks, no ";" (it separates parties), no ":" at the
# start, never the literal empty marker.
cell = (
    st.text(
        alphabet=st.characters(categories=("L", "N", "Zs"), include_characters="-'.,$"),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(lambda s: s and s != "[Vide]")
)
party = st.builds(Party, name=cell, role=st.one_of(st.none(), cell))
row = st.builds(
    IndexRow,
    date=st.one_of(st.none(), st.dates().map(lambda d: d.isoformat())),
    numero=cell,
    nature=st.sampled_from(NATURES),
    parties=st.lists(party, max_size=4),
    remarques=st.one_of(st.none(), cell),
    radiations=st.one_of(st.none(), cell),
)
page = st.builds(
    IndexPage,
    template=st.sampled_from(["Old 1", "Modern-Inscription"]),
    circonscription=st.one_of(st.none(), cell),
    cadastre=st.one_of(st.none(), cell),
    lot=st.one_of(st.none(), cell),
    rows=st.lists(row, max_size=5),
)


@given(st.lists(page, min_size=1, max_size=3))
def test_rendered_pages_read_back_to_the_same_data(pages):
    assert parse_pages(format_pages(pages)) == pages


def test_layout_is_the_one_the_boost_prompt_expects():
    text = format_pages(
        [
            IndexPage(
                template="Old 1",
                lot="856",
                rows=[
                    IndexRow(
                        date="1995-03-02",
                        numero="123-456",
                        nature="Vente",
                        parties=[
                            Party(name="TREMBLAY, Jean", role="Vendeur"),
                            Party(name="HQ", role=None),
                        ],
                    )
                ],
            )
        ]
    )
    assert text.startswith("--- Page 1 ---\n")
    assert "Métadonnées de l'En-tête :" in text and "Données du Tableau :\nLigne 1:\n" in text
    assert "Qualité : Vendeur; [Vide]\nNom des parties : TREMBLAY, Jean; HQ\n" in text
    assert "Cadastre : [Vide]" in text


def test_a_row_missing_required_cells_is_kept_with_them_empty():
    text = "--- Page 1 ---\nDonnées du Tableau :\nLigne 1:\nNom des parties : HQ\n"
    (page,) = parse_pages(text)
    assert page.rows[0].nature == "" and page.rows[0].numero == ""
    assert page.rows[0].parties[0].name == "HQ"
