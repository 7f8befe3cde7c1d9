from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Part", "parse_multipart"]


@dataclass(frozen=True)
class Part:
    headers: dict[str, str]
    content: bytes

    @property
    def name(self) -> str | None:
        return _params(self.headers.get("content-disposition", "")).get("name")


def _params(header: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in header.split(";")[1:]:
        key, _, value = item.strip().partition("=")
        params[key.lower()] = value.strip().strip('"')
    return params


def parse_multipart(body: bytes, content_type: str) -> dict[str, Part]:
    """The parts of a multipart/form-data body by field name (storage3 sends its uploads so)."""
    boundary = _params(content_type).get("boundary")
    if not boundary:
        raise ValueError("multipart body without a boundary")
    parts: dict[str, Part] = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        part = Part(headers, content.removesuffix(b"\r\n"))
        if part.name:
            parts[part.name] = part
    return parts
