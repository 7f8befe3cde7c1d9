from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import redis
from google import genai
from google.genai import types
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.failures import DocumentFailed
from tasks.gemini.caller import GeminiCaller
from tasks.gemini.client import shared_client
from tasks.gemini.errors import GeminiConfigError
from tasks.gemini.generate import GenerateResult, RetryPolicy
from tasks.gemini.tokens import TOKENS_PER_IMAGE_TILE, estimate_tokens
from tasks.pages.index_rows import NATURES, IndexPage
from tasks.services import gemini_limiter
from tasks.settings import Settings

M = TypeVar("M", bound=BaseModel)

PROMPTS = Path(__file__).resolve().parent / "prompts"
BOOST_HEADING = "TEXTE BRUT À BOOSTER :"
EXTRACT_TEMPERATURE = 0.1
BOOST_TEMPERATURE = 0.2
PAGE_OUTPUT_TOKENS = 32_768  # a dense modern page runs to a few thousand tokens of JSON
DOCUMENT_OUTPUT_TOKENS = 65_536  # boost and acte transcriptions cover the whole document


class BoostedIndex(BaseModel):
    """The boost's answer: the same pages and rows, values corrected."""

    pages: list[IndexPage]


class OcrFailed(DocumentFailed):
    """Gemini's answer cannot be used for this document (the message says why). `permanent`:
    reading again will not help (an unreadable page), as opposed to an answer that varies."""

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


@cache
def prompt(name: str) -> str:
    text = (PROMPTS / f"{name}.txt").read_text(encoding="utf-8")
    return text.replace("{natures}", ", ".join(NATURES))


def gemini_client(settings: Settings) -> genai.Client:
    """The process's client for this configuration (GeminiConfigError without a key)."""
    key = settings.gemini_api_key
    if key is None or not key.get_secret_value():
        raise GeminiConfigError()
    return shared_client(
        key.get_secret_value(), settings.gemini_base_url, settings.gemini_timeout_seconds
    )


def gemini_caller(settings: Settings, client: redis.Redis) -> GeminiCaller:
    """What an OCR run calls Gemini with; `client` is the run's Redis, for the shared limiter."""
    return GeminiCaller(
        client=gemini_client(settings),
        limiter=gemini_limiter(settings, client),
        policy=RetryPolicy(
            max_attempts=settings.gemini_max_attempts, max_wait_s=settings.gemini_max_wait_seconds
        ),
        extract_model=settings.gemini_extract_model,
        boost_model=settings.gemini_boost_model,
    )


def _json_config(
    schema: type[BaseModel], temperature: float, max_tokens: int
) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        temperature=temperature,
        max_output_tokens=max_tokens,
        response_mime_type="application/json",
        response_schema=schema,
    )


def read_index_page(gemini: GeminiCaller, jpeg: bytes) -> tuple[IndexPage, GenerateResult]:
    """One scanned index page -> its template, header and rows, as data."""
    image = types.Part.from_bytes(data=jpeg, mime_type="image/jpeg")
    config = _json_config(IndexPage, EXTRACT_TEMPERATURE, PAGE_OUTPUT_TOKENS)
    result = gemini.call(
        [prompt("index_extract"), image], model=gemini.extract_model, config=config
    )
    return _as(IndexPage, result), result


def boost_index(
    gemini: GeminiCaller, raw_text: str, page_count: int
) -> tuple[list[IndexPage], GenerateResult]:
    """One correction pass over the whole document (rows may refer to earlier pages)."""
    contents = [f"{prompt('index_boost')}\n---\n{BOOST_HEADING}\n{raw_text}"]
    config = _json_config(BoostedIndex, BOOST_TEMPERATURE, DOCUMENT_OUTPUT_TOKENS)
    result = gemini.call(contents, model=gemini.boost_model, config=config)
    pages = _as(BoostedIndex, result).pages
    if len(pages) != page_count:
        raise OcrFailed(
            f"the boost returned {len(pages)} pages for a {page_count}-page document",
            permanent=False,
        )
    return pages, result


def read_acte(gemini: GeminiCaller, document: types.Part, pages: int) -> GenerateResult:
    """The full transcription of an acte given as a whole PDF (inline or a Files API part).

    The limiter is told the PDF's real weight: a Files API part alone says nothing of it."""
    config = types.GenerateContentConfig(
        temperature=EXTRACT_TEMPERATURE, max_output_tokens=DOCUMENT_OUTPUT_TOKENS
    )
    instructions = prompt("acte_extract")
    estimate = estimate_tokens([instructions])
    estimate += TOKENS_PER_IMAGE_TILE * pages  # Gemini counts a PDF page as an image
    return gemini.call(
        [document, instructions], model=gemini.extract_model, config=config,
        tokens_estimate=estimate,
    )  # fmt: skip


def boost_acte(gemini: GeminiCaller, raw_text: str) -> GenerateResult:
    contents = [f"{prompt('acte_boost')}\n---\n{BOOST_HEADING}\n{raw_text}"]
    config = types.GenerateContentConfig(
        temperature=BOOST_TEMPERATURE, max_output_tokens=DOCUMENT_OUTPUT_TOKENS
    )
    return gemini.call(contents, model=gemini.boost_model, config=config)


# The OCR stage's Prefect tasks: one Gemini call each, named for the run's timeline.


@task(cache_policy=NO_CACHE, task_run_name="read-page-{number}", tags=["gemini"])
def read_page(gemini: GeminiCaller, number: int, jpeg: bytes) -> tuple[IndexPage, GenerateResult]:
    return read_index_page(gemini, jpeg)


@task(cache_policy=NO_CACHE, task_run_name="boost-index", tags=["gemini"])
def boost(
    gemini: GeminiCaller, raw_text: str, pages: int
) -> tuple[list[IndexPage], GenerateResult]:
    return boost_index(gemini, raw_text, pages)


@task(cache_policy=NO_CACHE, task_run_name="transcribe-acte", tags=["gemini"])
def transcribe(gemini: GeminiCaller, part: Any, pages: int) -> GenerateResult:
    return read_acte(gemini, part, pages)


@task(cache_policy=NO_CACHE, task_run_name="boost-acte", tags=["gemini"])
def boost_transcription(gemini: GeminiCaller, raw_text: str) -> GenerateResult:
    return boost_acte(gemini, raw_text)


def _as(model: type[M], result: GenerateResult) -> M:
    if isinstance(result.parsed, model):
        return result.parsed
    return model.model_validate(result.parsed)
