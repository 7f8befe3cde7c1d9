from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ApiError, storage_error

__all__ = ["Bucket", "ObjectStore", "StoredObject"]

_BUCKET_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bucket_not_found() -> ApiError:
    return storage_error("404", "Bucket not found", "Bucket not found")


def object_not_found() -> ApiError:
    return storage_error("404", "not_found", "Object not found")


def duplicate() -> ApiError:
    return storage_error("409", "Duplicate", "The resource already exists")


@dataclass(frozen=True)
class Bucket:
    id: str
    name: str
    public: bool
    file_size_limit: int | None
    allowed_mime_types: list[str] | None
    created_at: str
    updated_at: str

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "owner": "", "owner_id": None, "type": "STANDARD"}


@dataclass(frozen=True)
class StoredObject:
    id: str
    bucket_id: str
    name: str
    size: int
    content_type: str
    cache_control: str
    etag: str
    created_at: str
    updated_at: str
    user_metadata: dict[str, Any] | None = None

    def metadata(self) -> dict[str, Any]:
        return {
            "eTag": self.etag,
            "size": self.size,
            "mimetype": self.content_type,
            "cacheControl": self.cache_control,
            "lastModified": self.updated_at,
            "contentLength": self.size,
            "httpStatusCode": 200,
        }

    def record(self) -> dict[str, Any]:
        """The row Storage returns from list and remove."""
        return {
            "name": self.name,
            "bucket_id": self.bucket_id,
            "owner": "",
            "id": self.id,
            "updated_at": self.updated_at,
            "created_at": self.created_at,
            "last_accessed_at": self.updated_at,
            "metadata": self.metadata(),
            "user_metadata": self.user_metadata,
        }


class ObjectStore:
    """Buckets and objects on disk, indexed in memory; object files are named by a hash of
    their key, so any key is safe and `a/b` and `a/b/c` can both exist."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.buckets: dict[str, Bucket] = {}
        self.objects: dict[str, dict[str, StoredObject]] = {}
        (root / "buckets").mkdir(parents=True, exist_ok=True)
        (root / "objects").mkdir(parents=True, exist_ok=True)
        for path in (root / "buckets").glob("*.json"):
            bucket = Bucket(**json.loads(path.read_text()))
            self.buckets[bucket.id] = bucket
            self.objects[bucket.id] = {}
            for meta in (root / "objects" / bucket.id).glob("*/*.json"):
                stored = StoredObject(**json.loads(meta.read_text()))
                self.objects[bucket.id][stored.name] = stored

    def _data_path(self, bucket: str, name: str) -> Path:
        digest = hashlib.sha256(name.encode()).hexdigest()
        return self.root / "objects" / bucket / digest[:2] / digest

    def bucket(self, bucket_id: str) -> Bucket:
        if bucket_id not in self.buckets:
            raise bucket_not_found()
        return self.buckets[bucket_id]

    def _save_bucket(self, bucket: Bucket) -> None:
        _write(self.root / "buckets" / f"{bucket.id}.json", json.dumps(asdict(bucket)).encode())
        self.buckets[bucket.id] = bucket

    def create_bucket(self, bucket_id: str, name: str, options: dict[str, Any]) -> Bucket:
        if not _BUCKET_ID.match(bucket_id):
            raise storage_error(
                "400", "Invalid Input", "The bucket name contains invalid characters"
            )
        if bucket_id in self.buckets:
            raise duplicate()
        now = _now()
        bucket = Bucket(
            bucket_id,
            name or bucket_id,
            bool(options.get("public", False)),
            options.get("file_size_limit"),
            options.get("allowed_mime_types"),
            now,
            now,
        )
        self._save_bucket(bucket)
        self.objects[bucket_id] = {}
        return bucket

    def update_bucket(self, bucket_id: str, options: dict[str, Any]) -> None:
        bucket = self.bucket(bucket_id)
        fields = ("public", "file_size_limit", "allowed_mime_types")
        changes = {k: options[k] for k in fields if k in options}
        self._save_bucket(replace(bucket, **changes, updated_at=_now()))

    def empty_bucket(self, bucket_id: str) -> None:
        self.bucket(bucket_id)
        shutil.rmtree(self.root / "objects" / bucket_id, ignore_errors=True)
        self.objects[bucket_id] = {}

    def delete_bucket(self, bucket_id: str) -> None:
        self.bucket(bucket_id)
        if self.objects[bucket_id]:
            raise storage_error(
                "409", "InvalidRequest", "The bucket you tried to delete is not empty"
            )
        (self.root / "buckets" / f"{bucket_id}.json").unlink()
        shutil.rmtree(self.root / "objects" / bucket_id, ignore_errors=True)
        del self.buckets[bucket_id], self.objects[bucket_id]

    def get(self, bucket_id: str, name: str) -> tuple[StoredObject, Path]:
        self.bucket(bucket_id)
        stored = self.objects[bucket_id].get(name)
        if stored is None:
            raise object_not_found()
        return stored, self._data_path(bucket_id, name)

    def put(
        self,
        bucket_id: str,
        name: str,
        data: bytes,
        content_type: str,
        *,
        cache_control: str = "max-age=3600",
        user_metadata: dict[str, Any] | None = None,
        mode: str = "create",
    ) -> StoredObject:
        """Write an object; `mode` is "create" (fail if present), "upsert" or "update"."""
        bucket = self.bucket(bucket_id)
        _check_limits(bucket, data, content_type)
        previous = self.objects[bucket_id].get(name)
        if previous is not None and mode == "create":
            raise duplicate()
        if previous is None and mode == "update":
            raise object_not_found()
        now = _now()
        stored = StoredObject(
            id=previous.id if previous else str(uuid.uuid4()),
            bucket_id=bucket_id,
            name=name,
            size=len(data),
            content_type=content_type,
            cache_control=cache_control,
            etag=f'"{hashlib.md5(data).hexdigest()}"',
            created_at=previous.created_at if previous else now,
            updated_at=now,
            user_metadata=user_metadata,
        )
        path = self._data_path(bucket_id, name)
        _write(path, data)
        _write(path.with_suffix(".json"), json.dumps(asdict(stored)).encode())
        self.objects[bucket_id][name] = stored
        return stored

    def remove(self, bucket_id: str, names: list[str]) -> list[StoredObject]:
        self.bucket(bucket_id)
        removed = []
        for name in names:
            stored = self.objects[bucket_id].pop(name, None)
            if stored is None:
                continue
            path = self._data_path(bucket_id, name)
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
            removed.append(stored)
        return removed

    def copy(self, bucket_id: str, source: str, destination: str, *, move: bool) -> StoredObject:
        stored, path = self.get(bucket_id, source)
        copied = self.put(
            bucket_id,
            destination,
            path.read_bytes(),
            stored.content_type,
            cache_control=stored.cache_control,
            user_metadata=stored.user_metadata,
            mode="upsert",
        )
        if move:
            self.remove(bucket_id, [source])
        return copied

    def list(self, bucket_id: str, options: dict[str, Any]) -> list[dict[str, Any]]:
        """Entries directly under the `prefix` folder, as Storage's legacy list answers them."""
        self.bucket(bucket_id)
        prefix = str(options.get("prefix") or "").strip("/")
        folder = f"{prefix}/" if prefix else ""
        search = str(options.get("search") or "").lower()
        files: dict[str, dict[str, Any]] = {}
        folders: dict[str, dict[str, Any]] = {}
        for name, stored in self.objects[bucket_id].items():
            if not name.startswith(folder):
                continue
            head, slash, _ = name[len(folder) :].partition("/")
            if not head.lower().startswith(search):
                continue
            if slash:
                folders[head] = _folder(head)
            else:
                files[head] = {**stored.record(), "name": head}
        entries = list(folders.values()) + list(files.values())
        sort = options.get("sortBy") or {}
        column = sort.get("column", "name")
        if column not in ("name", "created_at", "updated_at", "last_accessed_at"):
            column = "name"
        entries.sort(key=lambda e: (e[column] is None, e[column] or ""))
        if sort.get("order") == "desc":
            entries.reverse()
        offset = int(options.get("offset") or 0)
        limit = int(options.get("limit") or 100)
        return entries[offset : offset + limit]


def _folder(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "id": None,
        "updated_at": None,
        "created_at": None,
        "last_accessed_at": None,
        "metadata": None,
    }


def _check_limits(bucket: Bucket, data: bytes, content_type: str) -> None:
    if bucket.file_size_limit is not None and len(data) > int(bucket.file_size_limit):
        raise storage_error(
            "413", "Payload too large", "The object exceeded the maximum allowed size"
        )
    allowed = bucket.allowed_mime_types
    if allowed:
        mime = content_type.split(";")[0].strip()
        family = mime.split("/")[0] + "/*"
        if mime not in allowed and family not in allowed:
            raise storage_error("415", "invalid_mime_type", f"mime type {mime} is not supported")


def _write(path: Path, data: bytes) -> None:
    # Written beside, then renamed: a reader never sees half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    temporary.write_bytes(data)
    os.replace(temporary, path)
