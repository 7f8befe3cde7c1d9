from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from .errors import storage_error

__all__ = ["sign", "verify"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, url: str, expires_in_s: int, **claims: Any) -> str:
    """An HS256 JWT for `url` ("bucket/key"), as Storage puts in its signed URLs."""
    now = int(time.time())
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(
        json.dumps({**claims, "url": url, "iat": now, "exp": now + expires_in_s}).encode()
    )
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}.{payload}.{_b64(signature.digest())}"


def verify(secret: str, token: str, url: str) -> dict[str, Any]:
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
        valid = hmac.compare_digest(_unb64(signature), expected.digest())
        claims = json.loads(_unb64(payload))
    except ValueError as exc:
        raise storage_error("400", "InvalidJWT", "jwt malformed") from exc
    if not valid:
        raise storage_error("400", "InvalidJWT", "invalid signature")
    if claims.get("exp", 0) < time.time():
        raise storage_error("400", "InvalidJWT", "jwt expired")
    if claims.get("url") != url:
        raise storage_error("400", "InvalidSignature", "The url do not match the signature")
    return claims
