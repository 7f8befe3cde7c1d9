from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.gemini import errors
from sandbox.gemini.answers import Oracle
from sandbox.gemini.content import (
    TOKENS_PER_IMAGE_TILE,
    BadRequest,
    Blob,
    Request,
    image_tokens,
    parse_request,
    text_tokens,
)
from sandbox.gemini.faults import FaultSwitch
from sandbox.gemini.fingerprint import PageBook, known_page
from sandbox.gemini.quota import Quota, Stats
from sandbox.gemini.truth import catalogue_pages
from tasks.pages import images as page_images
from tasks.pages.index_rows import IndexPage

__all__ = ["Config", "create_app"]

FILE_TTL = timedelta(hours=48)  # Gemini keeps uploaded files 48 h


@dataclass(frozen=True)
class Config:
    api_key: str
    rpm: int
    tpm: int
    window_s: float = 60.0
    load_catalogue: bool = True


@dataclass
class StoredFile:
    id: str
    display_name: str | None
    mime_type: str
    size: int
    data: bytes = b""
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    active_at: float = 0.0  # time.time() when PROCESSING turns ACTIVE

    def resource(self, base_url: str) -> dict[str, Any]:
        stamp = self.created.isoformat().replace("+00:00", "Z")
        resource = {
            "name": f"files/{self.id}",
            "mimeType": self.mime_type,
            "sizeBytes": str(self.size),
            "createTime": stamp,
            "updateTime": stamp,
            "expirationTime": (self.created + FILE_TTL).isoformat().replace("+00:00", "Z"),
            "sha256Hash": base64.b64encode(hashlib.sha256(self.data).hexdigest().encode()).decode(),
            "uri": f"{base_url}v1beta/files/{self.id}",
            "state": "ACTIVE" if time.time() >= self.active_at else "PROCESSING",
            "source": "UPLOADED",
        }
        if self.display_name:
            resource["displayName"] = self.display_name
        return resource


class Standin:
    def __init__(self, config: Config, book: PageBook) -> None:
        self.config = config
        self.quota = Quota(config.rpm, config.tpm, config.window_s)
        self.stats = Stats()
        self.faults = FaultSwitch()
        self.book = book
        self.oracle = Oracle(book)
        self.files: dict[str, StoredFile] = {}
        self.uploads: dict[str, StoredFile] = {}
        self.lock = threading.Lock()

    def check_key(self, request: HttpRequest) -> Response | None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            return errors.missing_api_key()
        if not secrets.compare_digest(key.encode(), self.config.api_key.encode()):
            return errors.api_key_invalid()
        return None

    def resolve_files(self, parsed: Request) -> list[Blob] | Response:
        blobs = list(parsed.blobs)
        for uri, mime_type in parsed.file_uris:
            file_id = uri.rstrip("/").rsplit("/", 1)[-1]
            stored = self.files.get(file_id)
            if stored is None:
                return errors.file_not_found(file_id)
            if time.time() < stored.active_at:
                return errors.error_response(
                    400,
                    "FAILED_PRECONDITION",
                    f"The File {file_id} is not in an ACTIVE state and usage is not allowed.",
                )
            blobs.append(Blob(mime_type or stored.mime_type, stored.data, uri))
        return blobs

    def prompt_tokens(self, parsed: Request, blobs: list[Blob]) -> dict[str, int]:
        by_modality = {"TEXT": text_tokens(parsed.prompt)}
        for blob in blobs:
            if blob.data is None:
                continue
            if blob.mime_type == "application/pdf":
                try:
                    tokens = TOKENS_PER_IMAGE_TILE * page_images.page_count(blob.data)
                except page_images.PdfError:
                    tokens = TOKENS_PER_IMAGE_TILE
                by_modality["DOCUMENT"] = by_modality.get("DOCUMENT", 0) + tokens
            elif blob.mime_type.startswith("image/"):
                by_modality["IMAGE"] = by_modality.get("IMAGE", 0) + image_tokens(blob.data)
            else:
                by_modality["TEXT"] += text_tokens(blob.data.decode("utf-8", "replace"))
        return by_modality


def _details(by_modality: dict[str, int]) -> list[dict[str, Any]]:
    return [{"modality": m, "tokenCount": n} for m, n in by_modality.items()]


def _split_target(target: str) -> tuple[str, str]:
    model, _, method = target.partition(":")
    return model, method


async def _json_body(request: HttpRequest) -> Any:
    try:
        return json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        raise BadRequest(f"Invalid JSON payload received. {exc.msg}") from exc


def _malformed(text: str) -> str:
    """JSON cut off mid-value, as a model that lost its way produces."""
    return text[: max(1, len(text) // 2)].rstrip("}] ") + ', "rows": [{"numero": "12'


async def model_call(request: HttpRequest) -> Response:
    arrived = time.time()  # when Google counts a request against the quota
    standin: Standin = request.app.state.standin
    model, method = _split_target(request.path_params["target"])
    if method not in ("generateContent", "countTokens"):
        return errors.error_response(404, "NOT_FOUND", f"Method {method!r} is not found.")
    endpoint = method
    if (denied := standin.check_key(request)) is not None:
        standin.stats.record(endpoint, denied.status_code, model)
        return denied
    try:
        parsed = parse_request(await _json_body(request))
    except BadRequest as exc:
        standin.stats.record(endpoint, 400, model)
        return errors.invalid_argument(str(exc))
    blobs = standin.resolve_files(parsed)
    if isinstance(blobs, Response):
        standin.stats.record(endpoint, blobs.status_code, model)
        return blobs
    by_modality = await run_in_threadpool(standin.prompt_tokens, parsed, blobs)
    prompt_tokens = sum(by_modality.values())
    if method == "countTokens":
        standin.stats.record(endpoint, 200, model)
        return JSONResponse(
            {"totalTokens": prompt_tokens, "promptTokensDetails": _details(by_modality)}
        )
    return await _generate(standin, model, parsed, blobs, by_modality, arrived)


async def _generate(
    standin: Standin,
    model: str,
    parsed: Request,
    blobs: list[Blob],
    by_modality: dict[str, int],
    arrived: float,
) -> Response:
    endpoint = "generateContent"
    prompt_tokens = sum(by_modality.values())
    if (storm_retry_s := standin.faults.storm()) is not None:
        standin.stats.record(endpoint, 429, model, injected=True, at=arrived)
        return errors.quota_exceeded(model, "requests", standin.quota.rpm, storm_retry_s)
    rejection = standin.quota.admit(model, prompt_tokens, now=arrived)
    if rejection is not None:
        standin.stats.record(endpoint, 429, model, at=arrived)
        return errors.quota_exceeded(
            model, rejection.metric, rejection.limit, rejection.retry_after_s
        )
    injected = standin.faults.draw(parsed.prompt, parsed.wants_json)
    if injected.delay_s:
        await asyncio.sleep(injected.delay_s)
    if injected.invalid_argument:
        standin.stats.record(endpoint, 400, model, prompt_tokens, at=arrived)
        return errors.invalid_argument()
    if injected.error_status == 500:
        standin.stats.record(endpoint, 500, model, prompt_tokens, at=arrived)
        return errors.error_response(
            500, "INTERNAL", "An internal error has occurred. Please retry or report."
        )
    if injected.error_status is not None:
        standin.stats.record(endpoint, injected.error_status, model, prompt_tokens, at=arrived)
        return errors.error_response(
            injected.error_status, "UNAVAILABLE", "The model is overloaded. Please try again later."
        )
    text, documents = await run_in_threadpool(standin.oracle.answer, parsed, blobs)
    finish_reason = "STOP"
    if injected.malformed_json:
        text = _malformed(text)
    if injected.truncate:
        text, finish_reason = text[: len(text) // 2], "MAX_TOKENS"
    limit = parsed.max_output_tokens
    if limit is not None and text_tokens(text) > limit:
        text, finish_reason = text[: limit * 4], "MAX_TOKENS"
    output_tokens = text_tokens(text)
    standin.stats.record(
        endpoint, 200, model, prompt_tokens, output_tokens, documents=documents, at=arrived
    )
    return JSONResponse(
        {
            "candidates": [
                {
                    "content": {"parts": [{"text": text}], "role": "model"},
                    "finishReason": finish_reason,
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": prompt_tokens + output_tokens,
                "promptTokensDetails": _details(by_modality),
            },
            "modelVersion": model,
            "responseId": secrets.token_urlsafe(16),
        }
    )


async def upload(request: HttpRequest) -> Response:
    standin: Standin = request.app.state.standin
    command = request.headers.get("x-goog-upload-command", "")
    if "start" in command:
        if (denied := standin.check_key(request)) is not None:
            standin.stats.record("files.create", denied.status_code)
            return denied
        body = await _json_body(request)
        meta = body.get("file") or {}
        size = int(request.headers.get("x-goog-upload-header-content-length", "0"))
        mime_type = (
            request.headers.get("x-goog-upload-header-content-type")
            or meta.get("mimeType")
            or "application/octet-stream"
        )
        upload_id = secrets.token_urlsafe(24)
        file_id = (meta.get("name") or "").removeprefix("files/") or secrets.token_hex(6)
        standin.uploads[upload_id] = StoredFile(file_id, meta.get("displayName"), mime_type, size)
        standin.stats.record("files.create", 200)
        query = f"upload_id={upload_id}&upload_protocol=resumable"
        url = f"{request.base_url}upload/v1beta/files?{query}"
        return Response(b"", headers={"x-goog-upload-url": url, "x-goog-upload-status": "active"})
    # The upload URL's upload_id is the credential here, as with Google's resumable uploads.
    upload_id = request.query_params.get("upload_id", "")
    pending = standin.uploads.get(upload_id)
    if pending is None:
        standin.stats.record("files.upload", 404)
        return errors.error_response(404, "NOT_FOUND", "No such upload session.")
    pending.data += await request.body()
    if "finalize" not in command:
        standin.stats.record("files.upload", 200)
        return Response(b"", headers={"x-goog-upload-status": "active"})
    del standin.uploads[upload_id]
    pending.size = len(pending.data)
    pending.active_at = time.time() + standin.faults.faults.file_processing_s
    standin.files[pending.id] = pending
    standin.stats.record("files.upload", 200)
    return JSONResponse(
        {"file": pending.resource(str(request.base_url))},
        headers={"x-goog-upload-status": "final"},
    )


async def file_resource(request: HttpRequest) -> Response:
    standin: Standin = request.app.state.standin
    endpoint = f"files.{request.method.lower()}"
    if (denied := standin.check_key(request)) is not None:
        standin.stats.record(endpoint, denied.status_code)
        return denied
    file_id = request.path_params["file_id"]
    stored = standin.files.get(file_id)
    if stored is None:
        standin.stats.record(endpoint, 403)
        return errors.file_not_found(file_id)
    standin.stats.record(endpoint, 200)
    if request.method == "DELETE":
        del standin.files[file_id]
        return JSONResponse({})
    return JSONResponse(stored.resource(str(request.base_url)))


async def list_files(request: HttpRequest) -> Response:
    standin: Standin = request.app.state.standin
    if (denied := standin.check_key(request)) is not None:
        return denied
    base = str(request.base_url)
    return JSONResponse({"files": [f.resource(base) for f in standin.files.values()]})


async def faults(request: HttpRequest) -> Response:
    switch = request.app.state.standin.faults
    if request.method == "DELETE":
        switch.update({"reset": True})
    elif request.method == "POST":
        try:
            switch.update(await _json_body(request))
        except (BadRequest, ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(switch.faults.as_json())


async def stats(request: HttpRequest) -> Response:
    standin: Standin = request.app.state.standin
    body = standin.stats.as_json()
    body["files"] = len(standin.files)
    body["limits"] = {"rpm": standin.quota.rpm, "tpm": standin.quota.tpm}
    body["window_s"] = standin.quota.window_s
    return JSONResponse(body)


async def reset(request: HttpRequest) -> Response:
    """Counters, quota windows, faults and files back to a fresh start."""
    standin: Standin = request.app.state.standin
    standin.stats = Stats()
    standin.quota.reset()
    standin.faults.update({"reset": True})
    standin.files.clear()
    standin.uploads.clear()
    return JSONResponse({"reset": True})


async def known_pages(request: HttpRequest) -> Response:
    """Teach the stand-in a page: {"image": base64, "page": IndexPage, "number", "document_id"}."""
    standin: Standin = request.app.state.standin
    body = await _json_body(request)
    image = Image.open(io.BytesIO(base64.b64decode(body["image"])))
    page = IndexPage.model_validate(body["page"])
    known = known_page(page, int(body.get("number", 1)), str(body.get("document_id", "")), image)
    standin.book.add(known)
    return JSONResponse({"known_pages": standin.book.load()})


async def health(request: HttpRequest) -> Response:
    return JSONResponse({"ok": True})


def create_app(config: Config, book: PageBook | None = None) -> Starlette:
    if book is None:
        book = PageBook(catalogue_pages if config.load_catalogue else None)
    app = Starlette(
        routes=[
            Route("/_sandbox/health", health),
            Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
            Route("/_sandbox/stats", stats),
            Route("/_sandbox/reset", reset, methods=["POST"]),
            Route("/_sandbox/pages", known_pages, methods=["POST"]),
            Route("/upload/{version}/files", upload, methods=["POST"]),
            Route("/{version}/files", list_files),
            Route("/{version}/files/{file_id}", file_resource, methods=["GET", "DELETE"]),
            Route("/{version}/models/{target}", model_call, methods=["POST"]),
        ]
    )
    app.state.standin = Standin(config, book)
    # Fingerprinting the catalogue takes seconds: start now so the first image does not wait.
    threading.Thread(target=book.load, name="catalogue-fingerprints", daemon=True).start()
    return app
