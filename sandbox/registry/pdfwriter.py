from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Line", "text_pdf"]

PAGE_WIDTH_PT = 612
PAGE_HEIGHT_PT = 792
MARGIN_PT = 60


@dataclass(frozen=True)
class Line:
    text: str
    size: float = 10.0
    bold: bool = False
    space_before: float = 0.0


def _escape(text: str) -> bytes:
    # The standard 14 fonts with WinAnsiEncoding cover French; the text layer stays extractable.
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _paginate(lines: list[Line]) -> list[list[tuple[Line, float]]]:
    pages: list[list[tuple[Line, float]]] = [[]]
    y = PAGE_HEIGHT_PT - MARGIN_PT
    for line in lines:
        step = line.size * 1.35 + line.space_before
        if y - step < MARGIN_PT:
            pages.append([])
            y = PAGE_HEIGHT_PT - MARGIN_PT
            step = line.size * 1.35
        y -= step
        pages[-1].append((line, y))
    return pages


def _content(placed: list[tuple[Line, float]], footer: str) -> bytes:
    out = [b"BT"]
    for line, y in placed:
        font = b"/F2" if line.bold else b"/F1"
        out.append(
            font
            + b" %.1f Tf 1 0 0 1 %d %.2f Tm (" % (line.size, MARGIN_PT, y)
            + _escape(line.text)
            + b") Tj"
        )
    out.append(
        b"/F1 8 Tf 1 0 0 1 %d %d Tm (" % (MARGIN_PT, MARGIN_PT // 2) + _escape(footer) + b") Tj"
    )
    out.append(b"ET")
    return b"\n".join(out)


def text_pdf(lines: list[Line], *, title: str) -> bytes:
    """A small, valid PDF with a real text layer (Helvetica, no embedded fonts)."""
    pages = _paginate(lines)
    objects: list[bytes] = []  # object n is objects[n - 1]
    font_ids = (3, 4)
    first_page = 6
    page_ids = [first_page + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = b" ".join(b"%d 0 R" % i for i in page_ids)
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)))
    for base in (b"Helvetica", b"Helvetica-Bold"):
        objects.append(
            b"<< /Type /Font /Subtype /Type1 /BaseFont /" + base + b" /Encoding /WinAnsiEncoding >>"
        )
    objects.append(b"<< /Title (" + _escape(title) + b") /Producer (SIRF) >>")
    for number, placed in enumerate(pages, 1):
        stream = _content(placed, f"{title} - page {number} de {len(pages)}")
        page_id = first_page + 2 * (number - 1)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "
            b"/Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> /Contents %d 0 R >>"
            % (PAGE_WIDTH_PT, PAGE_HEIGHT_PT, *font_ids, page_id + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    body = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    body += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    body += b"trailer\n<< /Size %d /Root 1 0 R /Info 5 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(body)
