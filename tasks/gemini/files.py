"""A document as a request part: inline while the request stays under Gemini's 20 MB, else
uploaded to the Files API and deleted after the call."""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from google import genai
from google.genai import errors, types

from tasks.gemini.errors import GeminiRejected, Unavailable
from tasks.gemini.google_errors import TRANSIENT_ERRORS, translate

__all__ = ["delete_file", "document_part", "upload_file"]

logger = logging.getLogger(__name__)

# Gemini caps a whole request at 20 MB, and base64 inflates bytes by 4/3: keep a margin for the
# prompt. Bigger documents go through the Files API.
REQUEST_LIMIT_BYTES = 20 * 1024 * 1024
REQUEST_MARGIN_BYTES = 512 * 1024
FILE_POLL_S = 2.0
FILE_READY_TIMEOUT_S = 60.0


def upload_file(
    client: genai.Client,
    data: bytes,
    *,
    mime_type: str,
    display_name: str,
    poll_s: float = FILE_POLL_S,
    ready_timeout_s: float = FILE_READY_TIMEOUT_S,
) -> types.File:
    """Upload to the Files API and wait until the file is ACTIVE."""
    config = types.UploadFileConfig(mime_type=mime_type, display_name=display_name)
    try:
        file = client.files.upload(file=io.BytesIO(data), config=config)
        deadline = time.monotonic() + ready_timeout_s
        while file.state == types.FileState.PROCESSING:
            if time.monotonic() > deadline:
                delete_file(client, file)
                raise Unavailable(f"{display_name} still PROCESSING after {ready_timeout_s:.0f} s")
            time.sleep(poll_s)
            file = client.files.get(name=file.name or "")
    except errors.APIError as exc:
        raise translate(exc, f"uploading {display_name}") from exc
    if file.state == types.FileState.FAILED:
        delete_file(client, file)
        raise GeminiRejected(f"Gemini could not process {display_name} (state FAILED)")
    return file


def delete_file(client: genai.Client, file: types.File) -> None:
    """Best effort: the file expires after 48 h anyway, and a failed delete must not hide the
    error that brought us here."""
    try:
        client.files.delete(name=file.name or "")
    except (errors.APIError, *TRANSIENT_ERRORS) as exc:
        logger.warning(
            "could not delete Gemini file %s: %s", file.name, type(exc).__name__,
            extra={"action": "gemini_file_delete_failed"},
        )  # fmt: skip


def _inline_fits(size: int) -> bool:
    return 4 * math.ceil(size / 3) + REQUEST_MARGIN_BYTES <= REQUEST_LIMIT_BYTES


@contextmanager
def document_part(
    client: genai.Client,
    data: bytes,
    *,
    mime_type: str,
    display_name: str,
    inline: bool | None = None,
) -> Iterator[types.Part]:
    """The document as a request part: inline when the request stays under 20 MB, else through
    the Files API, with the uploaded file deleted on the way out whatever happens."""
    if inline if inline is not None else _inline_fits(len(data)):
        yield types.Part(inline_data=types.Blob(data=data, mime_type=mime_type))
        return
    file = upload_file(client, data, mime_type=mime_type, display_name=display_name)
    try:
        yield types.Part(file_data=types.FileData(file_uri=file.uri, mime_type=mime_type))
    finally:
        delete_file(client, file)
