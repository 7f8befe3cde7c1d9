from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from . import signing
from .errors import storage_error
from .multipart import parse_multipart
from .objects import ObjectStore, StoredObject

__all__ = ["Storage"]

DEFAULT_CONTENT_TYPE = "text/plain;charset=UTF-8"
UPLOAD_URL_TTL_S = 2 * 60 * 60  # Storage's signed upload URLs last two hours


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise storage_error("400", "Invalid JSON", "Body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise storage_error("400", "Invalid JSON", "Body must be a JSON object")
    return body


def _cache_control(value: str | None) -> str:
    if not value:
        return "max-age=3600"
    return value if "=" in value else f"max-age={value}"


class Storage:
    """The Storage API subset storage3 uses: buckets, objects, lists and signed URLs."""

    def __init__(self, store: ObjectStore, secret: str) -> None:
        self.store = store
        self.secret = secret

    @property
    def routes(self) -> list[Route]:
        return [
            Route("/bucket", self.list_buckets, methods=["GET"]),
            Route("/bucket", self.create_bucket, methods=["POST"]),
            Route("/bucket/{bucket}", self.get_bucket, methods=["GET"]),
            Route("/bucket/{bucket}", self.update_bucket, methods=["PUT"]),
            Route("/bucket/{bucket}", self.delete_bucket, methods=["DELETE"]),
            Route("/bucket/{bucket}/empty", self.empty_bucket, methods=["POST"]),
            Route("/object/list/{bucket}", self.list_objects, methods=["POST"]),
            Route("/object/move", self.move, methods=["POST"]),
            Route("/object/copy", self.copy, methods=["POST"]),
            Route("/object/sign/{bucket}", self.sign_many, methods=["POST"]),
            Route("/object/sign/{bucket}/{name:path}", self.sign, methods=["POST"]),
            Route("/object/sign/{bucket}/{name:path}", self.signed_download, methods=["GET"]),
            Route("/object/public/{bucket}/{name:path}", self.public_download, methods=["GET"]),
            Route("/object/upload/sign/{bucket}/{name:path}", self.sign_upload, methods=["POST"]),
            Route("/object/upload/sign/{bucket}/{name:path}", self.signed_upload, methods=["PUT"]),
            Route("/object/authenticated/{bucket}/{name:path}", self.download, methods=["GET"]),
            Route("/object/info/{bucket}/{name:path}", self.info, methods=["GET"]),
            Route("/object/{bucket}", self.remove, methods=["DELETE"]),
            Route("/object/{bucket}/{name:path}", self.upload, methods=["POST"]),
            Route("/object/{bucket}/{name:path}", self.update, methods=["PUT"]),
            Route("/object/{bucket}/{name:path}", self.download, methods=["GET"]),
        ]

    async def list_buckets(self, request: Request) -> Response:
        return JSONResponse([b.record() for b in self.store.buckets.values()])

    async def create_bucket(self, request: Request) -> Response:
        body = await _json(request)
        bucket_id = str(body.get("id") or body.get("name") or "")
        self.store.create_bucket(bucket_id, str(body.get("name") or bucket_id), body)
        return JSONResponse({"name": bucket_id})

    async def get_bucket(self, request: Request) -> Response:
        return JSONResponse(self.store.bucket(request.path_params["bucket"]).record())

    async def update_bucket(self, request: Request) -> Response:
        self.store.update_bucket(request.path_params["bucket"], await _json(request))
        return JSONResponse({"message": "Successfully updated"})

    async def empty_bucket(self, request: Request) -> Response:
        self.store.empty_bucket(request.path_params["bucket"])
        return JSONResponse({"message": "Successfully emptied"})

    async def delete_bucket(self, request: Request) -> Response:
        self.store.delete_bucket(request.path_params["bucket"])
        return JSONResponse({"message": "Successfully deleted"})

    async def list_objects(self, request: Request) -> Response:
        body = await _json(request)
        return JSONResponse(self.store.list(request.path_params["bucket"], body))

    async def move(self, request: Request) -> Response:
        body = await _json(request)
        self.store.copy(body["bucketId"], body["sourceKey"], body["destinationKey"], move=True)
        return JSONResponse({"message": "Successfully moved"})

    async def copy(self, request: Request) -> Response:
        body = await _json(request)
        copied = self.store.copy(
            body["bucketId"], body["sourceKey"], body["destinationKey"], move=False
        )
        return JSONResponse({"Key": f"{copied.bucket_id}/{copied.name}"})

    async def remove(self, request: Request) -> Response:
        body = await _json(request)
        removed = self.store.remove(request.path_params["bucket"], list(body.get("prefixes", [])))
        return JSONResponse([stored.record() for stored in removed])

    async def upload(self, request: Request) -> Response:
        upsert = request.headers.get("x-upsert", "false").lower() == "true"
        return await self._put(request, "upsert" if upsert else "create")

    async def update(self, request: Request) -> Response:
        return await self._put(request, "update")

    async def sign_upload(self, request: Request) -> Response:
        bucket, name = request.path_params["bucket"], request.path_params["name"]
        self.store.bucket(bucket)
        upsert = request.headers.get("x-upsert", "false").lower() == "true"
        token = signing.sign(
            self.secret, f"{bucket}/{name}", UPLOAD_URL_TTL_S, upsert=upsert, upload=True
        )
        return JSONResponse(
            {"url": f"/object/upload/sign/{quote(bucket)}/{quote(name)}?token={token}"}
        )

    async def signed_upload(self, request: Request) -> Response:
        bucket, name = request.path_params["bucket"], request.path_params["name"]
        claims = signing.verify(
            self.secret, request.query_params.get("token", ""), f"{bucket}/{name}"
        )
        if not claims.get("upload"):
            raise storage_error("400", "InvalidJWT", "a download token cannot upload")
        return await self._put(request, "upsert" if claims.get("upsert") else "create")

    async def _put(self, request: Request, mode: str) -> Response:
        bucket, name = request.path_params["bucket"], request.path_params["name"]
        content_type = request.headers.get("content-type", "")
        body = await request.body()
        user_metadata = None
        if content_type.startswith("multipart/form-data"):
            parts = parse_multipart(body, content_type)
            if "file" not in parts:
                raise storage_error("400", "Invalid Input", "No file was sent")
            data = parts["file"].content
            content_type = parts["file"].headers.get("content-type", DEFAULT_CONTENT_TYPE)
            cache = parts["cacheControl"].content.decode() if "cacheControl" in parts else None
            if "metadata" in parts:
                user_metadata = json.loads(parts["metadata"].content)
        else:
            data = body
            content_type = content_type or DEFAULT_CONTENT_TYPE
            cache = request.headers.get("cache-control")
        stored = self.store.put(
            bucket,
            name,
            data,
            content_type,
            cache_control=_cache_control(cache),
            user_metadata=user_metadata,
            mode=mode,
        )
        return JSONResponse({"Id": stored.id, "Key": f"{bucket}/{name}"})

    async def download(self, request: Request) -> Response:
        return self._serve(request, request.path_params["bucket"], request.path_params["name"])

    async def public_download(self, request: Request) -> Response:
        bucket = request.path_params["bucket"]
        if not self.store.bucket(bucket).public:
            raise storage_error("404", "not_found", "Object not found")
        return self._serve(request, bucket, request.path_params["name"])

    async def signed_download(self, request: Request) -> Response:
        bucket, name = request.path_params["bucket"], request.path_params["name"]
        token = request.query_params.get("token")
        if not token:
            raise storage_error("400", "InvalidJWT", "Missing token")
        if signing.verify(self.secret, token, f"{bucket}/{name}").get("upload"):
            raise storage_error("400", "InvalidJWT", "an upload token cannot download")
        return self._serve(request, bucket, name)

    def _serve(self, request: Request, bucket: str, name: str) -> Response:
        stored, path = self.store.get(bucket, name)
        headers = {"cache-control": stored.cache_control, "etag": stored.etag}
        download = request.query_params.get("download")
        filename = (download or name.rsplit("/", 1)[-1]) if download is not None else None
        return FileResponse(
            path,
            headers=headers,
            media_type=stored.content_type,
            filename=filename,
            content_disposition_type="attachment",
        )

    async def info(self, request: Request) -> Response:
        stored, _ = self.store.get(request.path_params["bucket"], request.path_params["name"])
        return JSONResponse(_info(stored))

    def _signed_url(self, bucket: str, name: str, expires_in_s: int) -> str:
        token = signing.sign(self.secret, f"{bucket}/{name}", expires_in_s)
        return f"/object/sign/{quote(bucket)}/{quote(name)}?token={token}"

    async def sign(self, request: Request) -> Response:
        bucket, name = request.path_params["bucket"], request.path_params["name"]
        body = await _json(request)
        self.store.get(bucket, name)
        expires_in_s = int(body.get("expiresIn", 60))
        return JSONResponse({"signedURL": self._signed_url(bucket, name, expires_in_s)})

    async def sign_many(self, request: Request) -> Response:
        bucket = request.path_params["bucket"]
        body = await _json(request)
        self.store.bucket(bucket)
        expires_in_s = int(body.get("expiresIn", 60))
        answers = []
        for name in body.get("paths", []):
            if name in self.store.objects[bucket]:
                url, error = self._signed_url(bucket, name, expires_in_s), None
            else:
                url, error = (
                    None,
                    "Either the object does not exist or you do not have access to it",
                )
            answers.append({"error": error, "path": name, "signedURL": url})
        return JSONResponse(answers)


def _info(stored: StoredObject) -> dict[str, Any]:
    return {
        "id": stored.id,
        "name": stored.name,
        "version": stored.id,
        "bucket_id": stored.bucket_id,
        "size": stored.size,
        "content_type": stored.content_type,
        "cache_control": stored.cache_control,
        "etag": stored.etag,
        "metadata": stored.user_metadata,
        "last_modified": stored.updated_at,
        "created_at": stored.created_at,
    }
