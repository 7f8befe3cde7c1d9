"""Milliseconds per page to rasterise and preprocess PDFs at 300 DPI.

    .venv/bin/python bench/pages.py [--rounds N]

Compares, on the registry stand-in's index PDFs (scanned-looking, 150 DPI scans), in one run:
- pdfium-threads: tasks.pages.images.render_pages (pdfium under a lock, Pillow in 2 threads);
- pdfium-processes: 2 processes, each with its own pdfium, same per-page work;
- pdftoppm+pillow: `pdftoppm -r 300 -gray` to PGM, then the same Pillow preprocessing and JPEG
  encoding as tasks.pages.images (2 threads);
- pdftoppm-jpeg: `pdftoppm -r 300 -gray -jpeg`, poppler's own JPEG, no preprocessing (for scale).
Each mode runs in a fresh subprocess so its peak RSS (self + children) is its own.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from sandbox.registry import catalogue
from tasks.pages import images as page_images

MODES = ("pdfium-threads", "pdfium-processes", "pdftoppm+pillow", "pdftoppm-jpeg")
OPTIONS = page_images.PageOptions(dpi=300)
WORKERS = 2


def write_pdfs(directory: Path) -> list[Path]:
    paths = []
    for document in catalogue.INDEX_DOCUMENTS:
        path = directory / f"{document.id}.pdf"
        path.write_bytes(catalogue.render_pdf(document))
        paths.append(path)
    return paths


def pdfium_threads(path: Path) -> int:
    return sum(1 for _ in page_images.render_pages(path, OPTIONS, workers=WORKERS))


_document = None


def _open(path: str) -> None:
    global _document
    _document = page_images.open_pdf(Path(path))


def _one_page(index: int) -> int:
    return len(page_images._page_jpeg(_document, index, OPTIONS))


def pdfium_processes(path: Path) -> int:
    count = page_images.page_count(path)
    with ProcessPoolExecutor(WORKERS, initializer=_open, initargs=(str(path),)) as pool:
        return sum(1 for _ in pool.map(_one_page, range(count)))


def _preprocess_file(pgm: Path) -> int:
    with Image.open(pgm) as image:
        out = io.BytesIO()
        page_images.preprocess(image, OPTIONS).save(out, "JPEG", quality=OPTIONS.jpeg_quality)
    return len(out.getvalue())


def pdftoppm_pillow(path: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["pdftoppm", "-r", "300", "-gray", str(path), f"{tmp}/p"], check=True)
        files = sorted(Path(tmp).glob("p-*.pgm"))
        with ThreadPoolExecutor(WORKERS) as pool:
            return sum(1 for _ in pool.map(_preprocess_file, files))


def pdftoppm_jpeg(path: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        command = ["pdftoppm", "-r", "300", "-gray", "-jpeg", "-jpegopt", "quality=90"]
        subprocess.run([*command, str(path), f"{tmp}/p"], check=True)
        return len(list(Path(tmp).glob("p-*.jpg")))


RUNNERS = {
    "pdfium-threads": pdfium_threads,
    "pdfium-processes": pdfium_processes,
    "pdftoppm+pillow": pdftoppm_pillow,
    "pdftoppm-jpeg": pdftoppm_jpeg,
}


def run_mode(mode: str, paths: list[Path]) -> dict[str, float]:
    runner = RUNNERS[mode]
    runner(paths[0])  # warm-up: imports, pdfium init, page cache
    started = time.perf_counter()
    count = sum(runner(path) for path in paths)
    elapsed = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "pages": count,
        "ms_per_page": 1000 * elapsed / count,
        "peak_rss_mb": own / 1024,  # Linux reports KiB
        "peak_children_rss_mb": children / 1024,
    }


def _child(mode: str, pdf_dir: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--mode", mode, "--pdf-dir", pdf_dir]
    answer = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(answer.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="modes alternate, round by round")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one child's run
    parser.add_argument("--pdf-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.mode, sorted(args.pdf_dir.glob("*.pdf")))))
        return
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_pdfs(Path(tmp))
        total_pages = sum(page_images.page_count(p) for p in paths)
        print(f"{len(paths)} PDFs, {total_pages} pages, 300 DPI, long side capped at 3072 px;")
        print(f"{args.rounds} rounds, modes alternating; imports alone: {baseline_mb:.0f} MB")
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for _ in range(args.rounds):
            for mode in MODES:
                runs[mode].append(_child(mode, tmp))
    best = {}
    for mode, results in runs.items():
        times = sorted(r["ms_per_page"] for r in results)
        best[mode] = times[0]
        peak = max(r["peak_rss_mb"] for r in results)
        children = max(r["peak_children_rss_mb"] for r in results)
        print(
            f"{mode:18} best {times[0]:6.1f}  median {statistics.median(times):6.1f} ms/page"
            f"   peak RSS {peak:4.0f} MB + children {children:4.0f} MB"
        )
    ratio = best["pdfium-threads"] / best["pdftoppm+pillow"]
    print(f"pdfium-threads / pdftoppm+pillow (best runs) = {ratio:.2f}")


if __name__ == "__main__":
    main()
