from __future__ import annotations

import io
import json
import re

import pytest
from google import genai
from google.genai import types
from PIL import Image

from sandbox.registry import catalogue
from tasks.gemini.files import document_part
from tasks.pages import images as page_images
from tasks.pages import index_text
from tasks.pages.index_rows import IndexPage

from .conftest import MODEL, call, stats


def first_page_jpeg(document) -> bytes:
    (_, jpeg), *_ = page_images.render_pages(catalogue.render_pdf(document))
    return jpeg


def test_text_call_returns_text_usage_and_model(client, limiter) -> None:
    result = call(client, limiter, "Bonjour")
    assert result.text
    assert result.model_version == MODEL and result.response_id
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.output_tokens > 0
    assert limiter.acquired == 1 and limiter.reconciled == [result.usage.prompt_tokens]


def test_catalogue_page_image_reads_back_as_its_index_page(client, limiter, base_url) -> None:
    document = catalogue.INDEX_DOCUMENTS[0]
    image = types.Part.from_bytes(data=first_page_jpeg(document), mime_type="image/jpeg")
    result = call(
        client,
        limiter,
        ["Lis cette page.", image],
        response_mime_type="application/json",
        response_schema=IndexPage,
    )
    assert result.parsed == document.pages[0]
    assert result.usage.prompt_tokens >= 258
    assert stats(base_url)["log"][-1]["documents"] == [f"{document.id}#1"]  # what it read


def test_catalogue_page_as_text_uses_the_index_layout(client, limiter) -> None:
    document = catalogue.INDEX_DOCUMENTS[1]
    image = types.Part.from_bytes(data=first_page_jpeg(document), mime_type="image/jpeg")
    result = call(client, limiter, ["Lis cette page.", image])
    assert "Données du Tableau :" in result.text
    assert index_text.parse_pages(result.text) == [document.pages[0]]


def test_an_unknown_image_is_unreadable_not_invented(client, limiter) -> None:
    buffer = io.BytesIO()
    Image.new("L", (1650, 1275), 230).save(buffer, "JPEG")
    image = types.Part.from_bytes(data=buffer.getvalue(), mime_type="image/jpeg")
    result = call(
        client, limiter, ["Lis", image], response_mime_type="application/json",
        response_schema=IndexPage,
    )  # fmt: skip
    assert result.parsed.rows == []


def test_acte_pdf_inline_answers_its_text_layer(client, limiter, base_url) -> None:
    acte = next(a for a in catalogue.ACTES if not a.paper_only)
    with document_part(
        client, catalogue.render_pdf(acte), mime_type="application/pdf", display_name="acte"
    ) as part:
        assert part.inline_data is not None
        result = call(client, limiter, [part, "Transcris tout."])
    squash = lambda text: re.sub(r"\s+", " ", text).strip()  # noqa: E731
    assert squash(catalogue.acte_text(acte)) in squash(result.text)
    assert stats(base_url)["log"][-1]["documents"] == [f"Acte {acte.numero}"]


def test_files_api_upload_use_and_delete(client, limiter, base_url) -> None:
    acte = next(a for a in catalogue.ACTES if not a.paper_only)
    with document_part(
        client, catalogue.render_pdf(acte), mime_type="application/pdf",
        display_name="acte-x", inline=False,
    ) as part:  # fmt: skip
        assert part.file_data is not None
        name = "files/" + part.file_data.file_uri.rsplit("/", 1)[1]
        assert client.files.get(name=name).state == types.FileState.ACTIVE
        result = call(client, limiter, [part, "Transcris tout."])
        assert acte.numero in result.text
    with pytest.raises(genai.errors.ClientError) as raised:
        client.files.get(name=name)
    assert raised.value.code == 403


def test_count_tokens(client) -> None:
    text = client.models.count_tokens(model=MODEL, contents="x" * 400)
    assert text.total_tokens == 100
    small = io.BytesIO()
    Image.new("L", (300, 300)).save(small, "PNG")
    image = types.Part.from_bytes(data=small.getvalue(), mime_type="image/png")
    assert client.models.count_tokens(model=MODEL, contents=[image]).total_tokens == 258


def test_boost_normalises_aliases_and_keeps_the_layout(client, limiter) -> None:
    page = catalogue.INDEX_DOCUMENTS[0].pages[0]
    raw = index_text.format_pages([page]).replace(page.rows[0].parties[0].name, "HQ")
    raw = raw.replace("Banque Royale du Canada", "RBC")
    prompt = (
        "Normalise les alias : HQ → Hydro-Québec ; RBC → Banque Royale du Canada.\n---\n"
        f"TEXTE BRUT À BOOSTER :\n{raw}"
    )
    result = call(client, limiter, prompt)
    assert "HQ" not in result.text and "RBC" not in result.text
    assert "Hydro-Québec" in result.text
    (boosted,) = index_text.parse_pages(result.text)
    assert len(boosted.rows) == len(page.rows)


def test_boost_answers_json_in_the_requested_shape(client, limiter) -> None:
    raw = "--- Page 1 ---\nDonnées du Tableau :\nLigne 1:\nNom des parties : Royal Bank"
    strings = {"type": "array", "items": {"type": "string"}}
    schema = {
        "type": "object",
        "properties": {"texte": {"type": "string"}, "corrections": strings},
        "required": ["texte"],
    }
    result = call(
        client, limiter, f"Règle : Banque Royale du Canada.\nTEXTE BRUT À BOOSTER :\n{raw}",
        response_mime_type="application/json", response_json_schema=schema,
    )  # fmt: skip
    assert "Banque Royale du Canada" in result.parsed["texte"]
    assert result.parsed["corrections"]
    assert json.loads(result.text) == result.parsed
