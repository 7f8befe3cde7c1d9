"""The input-token estimate of a request, which the shared rate limiter charges before a call."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from google.genai import types
from PIL import Image

from tasks.pages import images as page_images

__all__ = ["CHARS_PER_TOKEN", "TOKENS_PER_IMAGE_TILE", "estimate_tokens"]

TOKENS_PER_IMAGE_TILE = 258  # an image up to 384 px, each 768 px tile of a bigger one, a PDF page
CHARS_PER_TOKEN = 4


def _image_tokens(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (OSError, Image.DecompressionBombError):
        return TOKENS_PER_IMAGE_TILE
    if width <= 384 and height <= 384:
        return TOKENS_PER_IMAGE_TILE
    return TOKENS_PER_IMAGE_TILE * math.ceil(width / 768) * math.ceil(height / 768)


def _part_tokens(part: Any) -> int:
    if isinstance(part, str):
        return math.ceil(len(part) / CHARS_PER_TOKEN)
    if isinstance(part, types.Part):
        if part.text is not None:
            return math.ceil(len(part.text) / CHARS_PER_TOKEN)
        blob = part.inline_data
        if blob is not None and blob.data is not None:
            if blob.mime_type == "application/pdf":
                try:
                    return TOKENS_PER_IMAGE_TILE * page_images.page_count(blob.data)
                except page_images.PdfError:
                    return TOKENS_PER_IMAGE_TILE
            return _image_tokens(blob.data)
        return 0  # a Files API reference: the caller knows its size, pass tokens_estimate
    if isinstance(part, types.Content):
        return sum(_part_tokens(p) for p in part.parts or [])
    return 0


def estimate_tokens(contents: Sequence[Any] | Any) -> int:
    """Input tokens as Gemini counts them: its TPM quota counts input tokens only (quota id
    GenerateContentInputTokensPerModelPerMinute), so output tokens take none of it."""
    items = contents if isinstance(contents, list | tuple) else [contents]
    return sum(_part_tokens(p) for p in items)
