from __future__ import annotations

import io
import threading
import weakref
from collections.abc import Callable

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw

from tasks.pages import images as page_images


def make_pdf(count: int, size_px: tuple[int, int] = (612, 792), resolution: int = 72) -> bytes:
    """`count` scanned-looking pages; at resolution 72 a page is size_px points."""
    images = []
    for n in range(count):
        image = Image.new("L", size_px, 225)
        draw = ImageDraw.Draw(image)
        draw.rectangle([20, 20 + 10 * n, size_px[0] // 2, 40 + 10 * n], fill=60)
        images.append(image)
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=resolution)
    return out.getvalue()


def jpeg_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert image.mode == "L"
        return image.size


def test_page_count_and_pages_in_order() -> None:
    pdf = make_pdf(5)
    assert page_images.page_count(pdf) == 5
    numbers = [n for n, _ in page_images.render_pages(pdf, page_images.PageOptions(dpi=50))]
    assert numbers == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("dpi", "expected"),
    [
        (72, (612, 792)),  # one pixel per point
        (150, (1275, 1650)),  # US Letter at 150 DPI
        (300, (2374, 3072)),  # 2550x3300 would exceed the cap: long side held at 3072
    ],
)
def test_sizes_follow_dpi_and_the_cap(dpi: int, expected: tuple[int, int]) -> None:
    (_, jpeg), *_ = page_images.render_pages(make_pdf(1), page_images.PageOptions(dpi=dpi))
    width, height = jpeg_size(jpeg)
    assert abs(width - expected[0]) <= 1 and abs(height - expected[1]) <= 1  # pdfium rounds up


def test_cap_is_configurable() -> None:
    options = page_images.PageOptions(dpi=300, max_side_px=1000)
    (_, jpeg), *_ = page_images.render_pages(make_pdf(1), options)
    assert max(jpeg_size(jpeg)) == 1000


def test_preprocess_stretches_contrast_and_sharpens() -> None:
    faded = Image.new("RGB", (100, 100), (180, 180, 180))
    ImageDraw.Draw(faded).rectangle([10, 10, 50, 50], fill=(140, 140, 140))
    out = page_images.preprocess(faded, page_images.PageOptions())
    assert out.mode == "L"
    assert out.getextrema() == (0, 255)


def _count_live_bitmaps(monkeypatch: pytest.MonkeyPatch) -> Callable[[], tuple[int, int]]:
    """Wrap the renderer so each bitmap it returns is counted until it is freed."""
    lock = threading.Lock()
    state = {"live": 0, "peak": 0, "rendered": 0}
    real_render = page_images._render

    def released() -> None:
        with lock:
            state["live"] -= 1

    def counting_render(*args: object, **kwargs: object) -> Image.Image:
        image = real_render(*args, **kwargs)
        with lock:
            state["live"] += 1
            state["rendered"] += 1
            state["peak"] = max(state["peak"], state["live"])
        weakref.finalize(image, released)
        return image

    monkeypatch.setattr(page_images, "_render", counting_render)
    return lambda: (state["peak"], state["rendered"])


def test_a_long_pdf_never_holds_more_bitmaps_than_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    counters = _count_live_bitmaps(monkeypatch)
    pdf = make_pdf(30)
    seen = 0
    for _number, jpeg in page_images.render_pages(pdf, page_images.PageOptions(dpi=100), workers=2):
        seen += 1
        assert jpeg[:2] == b"\xff\xd8"
    peak, rendered = counters()
    assert (seen, rendered) == (30, 30)
    assert peak <= 2


def test_pages_are_rendered_only_as_the_consumer_pulls(monkeypatch: pytest.MonkeyPatch) -> None:
    counters = _count_live_bitmaps(monkeypatch)
    generator = page_images.render_pages(
        make_pdf(30), page_images.PageOptions(dpi=50), max_pending=3
    )
    next(generator)
    next(generator)
    generator.close()  # stops the work and closes the document
    _, rendered = counters()
    assert rendered <= 2 + 3


def test_empty_file_is_reported_as_such() -> None:
    with pytest.raises(page_images.EmptyPdf, match="empty"):
        list(page_images.render_pages(b""))


@pytest.mark.parametrize(
    "data",
    [b"this is not a PDF", make_pdf(2)[:600]],
    ids=["not-a-pdf", "truncated"],
)
def test_corrupt_pdf_is_reported_as_such(data: bytes) -> None:
    with pytest.raises(page_images.CorruptPdf, match="not a readable PDF"):
        list(page_images.render_pages(data))


def test_pdf_without_pages_is_reported_as_such() -> None:
    out = io.BytesIO()
    pdfium.PdfDocument.new().save(out)
    with pytest.raises(page_images.PdfWithoutPages, match="no pages"):
        page_images.page_count(out.getvalue())


def test_errors_name_the_file_when_given_a_path(tmp_path) -> None:
    path = tmp_path / "acte-123.pdf"
    path.write_bytes(b"")
    with pytest.raises(page_images.PdfError, match=r"acte-123\.pdf is empty"):
        page_images.page_count(path)


def test_a_pdf_longer_than_the_limit_is_refused_before_any_page_is_rendered() -> None:
    pdf = make_pdf(5)
    assert page_images.check_page_count(pdf, 5) == 5
    with pytest.raises(page_images.TooManyPages, match="has 5 pages, more than OCR_MAX_PAGES=4"):
        page_images.check_page_count(pdf, 4)
