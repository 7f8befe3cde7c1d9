from __future__ import annotations

import base64
import binascii
import io
import math
import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

__all__ = [
    "BadRequest",
    "Blob",
    "Request",
    "decode_base64",
    "get",
    "image_tokens",
    "parse_request",
    "text_tokens",
]

TOKENS_PER_IMAGE_TILE = 258  # Gemini bills an image (or a PDF page) as 258 tokens per 768 px tile
SMALL_IMAGE_PX = 384  # both sides at most this: one tile
TILE_PX = 768
CHARS_PER_TOKEN = 4


class BadRequest(Exception):
    """The request body is not a valid generateContent/countTokens request."""


def get(obj: dict[str, Any], camel: str, default: Any = None) -> Any:
    """A request field under its camelCase or snake_case name (the API accepts both)."""
    if camel in obj:
        return obj[camel]
    snake = re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()
    return obj.get(snake, default)


def decode_base64(data: str) -> bytes:
    """Standard or URL-safe base64, padded or not."""
    cleaned = "".join(data.split()).replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except binascii.Error as exc:
        raise BadRequest(f"Invalid value at 'inline_data.data': {exc}") from exc


@dataclass(frozen=True)
class Blob:
    mime_type: str
    data: bytes | None  # None for a fileData part whose file is unknown
    uri: str | None = None


@dataclass
class Request:
    texts: list[str] = field(default_factory=list)
    blobs: list[Blob] = field(default_factory=list)
    file_uris: list[tuple[str, str]] = field(default_factory=list)  # (uri, mime type)
    response_mime_type: str | None = None
    schema: dict[str, Any] | None = None
    max_output_tokens: int | None = None

    @property
    def prompt(self) -> str:
        return "\n".join(self.texts)

    @property
    def wants_json(self) -> bool:
        return self.response_mime_type == "application/json"


def parse_request(body: Any) -> Request:
    if not isinstance(body, dict):
        raise BadRequest("Invalid JSON payload received.")
    request = Request()
    contents = body.get("contents")
    if not contents and "generateContentRequest" in body:  # countTokens' other form
        return parse_request(body["generateContentRequest"])
    if not isinstance(contents, list) or not contents:
        raise BadRequest("* GenerateContentRequest.contents: contents is not specified")
    system = get(body, "systemInstruction")
    for content in ([system] if system else []) + contents:
        for part in content.get("parts") or []:
            _read_part(part, request)
    config = get(body, "generationConfig") or {}
    request.response_mime_type = get(config, "responseMimeType")
    request.schema = get(config, "responseJsonSchema") or get(config, "responseSchema")
    request.max_output_tokens = get(config, "maxOutputTokens")
    return request


def _read_part(part: dict[str, Any], request: Request) -> None:
    if "text" in part:
        request.texts.append(str(part["text"]))
    elif (inline := get(part, "inlineData")) is not None:
        mime_type = get(inline, "mimeType") or ""
        request.blobs.append(Blob(mime_type, decode_base64(inline.get("data", ""))))
    elif (file_data := get(part, "fileData")) is not None:
        uri = get(file_data, "fileUri") or ""
        request.file_uris.append((uri, get(file_data, "mimeType") or ""))


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def image_tokens(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (OSError, Image.DecompressionBombError):
        return TOKENS_PER_IMAGE_TILE
    if width <= SMALL_IMAGE_PX and height <= SMALL_IMAGE_PX:
        return TOKENS_PER_IMAGE_TILE
    tiles = math.ceil(width / TILE_PX) * math.ceil(height / TILE_PX)
    return TOKENS_PER_IMAGE_TILE * tiles
