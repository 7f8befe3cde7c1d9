"""The Gemini quota used to its ceiling: a deep backlog of index pages read through the product's
own call path (`tasks.ocr.read_index_page`: the shared Redis limiter, the retry policy, the 429
pause) by several worker processes on two hosts, against the Gemini stand-in enforcing RPM and
TPM limits scaled down for this machine. Then the same workers with no shared limiter (its limits
set far above the quota), so the difference is seen.

Prints, from the stand-in's own request log, per phase: achieved RPM and TPM (input tokens, what
the quota counts) as a ratio of the limit, the most admitted in any trailing 60 s window against
the limit (every call we sent, by its arrival), and the 429s.

    .venv/bin/python bench/quota.py [--rpm 120] [--tpm 400000] [--minutes 3] [--processes 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import threading
import time
import uuid
from bisect import bisect_left

import httpx
import redis

from sandbox import gemini
from sandbox.registry.catalogue import INDEX_DOCUMENTS, render_pdf
from tasks.ocr import gemini_caller, read_index_page
from tasks.pages import images as page_images
from tasks.services import redis_client
from tasks.settings import load_settings

fork = multiprocessing.get_context("fork")
WINDOW_S = 60.0  # Gemini's and the limiter's window
HOSTS = ("quota-a", "quota-b")


def page_backlog() -> list[bytes]:
    """Every page of the catalogue's index documents, as the OCR flow sends them."""
    options = page_images.PageOptions()
    return [
        jpeg
        for d in INDEX_DOCUMENTS
        for _, jpeg in page_images.render_pages(render_pdf(d), options)
    ]


def worker(env: dict[str, str], jpegs: list[bytes], threads: int, until: float, out) -> None:
    """One worker process: `threads` page readers, as OCR_PAGE_CONCURRENCY runs them."""
    os.environ.update(env)
    settings = load_settings(_env_file=None)
    caller = gemini_caller(settings, redis_client(settings))
    done, failed = [0], [0]

    def read(offset: int) -> None:
        n = offset
        while time.time() < until:
            try:
                read_index_page(caller, jpegs[n % len(jpegs)])
                done[0] += 1
            except Exception:  # a call that gave up after its attempts: counted, not fatal
                failed[0] += 1
            n += threads

    pool = [threading.Thread(target=read, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((done[0], failed[0]))


def trailing_max(stamps: list[float], weights: list[int]) -> tuple[int, int]:
    """Most requests and most tokens admitted in any trailing window (stamps sorted)."""
    best_n = best_w = 0
    prefix = [0]
    for w in weights:
        prefix.append(prefix[-1] + w)
    for i, t in enumerate(stamps):
        j = bisect_left(stamps, t - WINDOW_S + 1e-9)
        best_n = max(best_n, i - j + 1)
        best_w = max(best_w, prefix[i + 1] - prefix[j])
    return best_n, best_w


def phase(name: str, url: str, key: str, args, jpegs: list[bytes], limits: tuple[int, int]):
    httpx.post(f"{url}/_sandbox/reset").raise_for_status()
    prefix = f"bench:quota:{uuid.uuid4().hex[:8]}:"
    began = time.time()
    until = began + args.minutes * 60
    results = fork.Queue()
    procs = []
    for i in range(args.processes):
        env = {
            "GEMINI_BASE_URL": url,
            "GEMINI_API_KEY": key,
            "GEMINI_MAX_RPM": str(limits[0]),
            "GEMINI_MAX_TPM": str(limits[1]),
            "GEMINI_MAX_ATTEMPTS": "8",
            "REDIS_KEY_PREFIX": prefix,
            "REGISTRE_HOST_ID": HOSTS[i % len(HOSTS)],
        }
        procs.append(fork.Process(target=worker, args=(env, jpegs, args.threads, until, results)))
    for p in procs:
        p.start()
    counts = [results.get(timeout=args.minutes * 60 + 600) for _ in procs]
    for p in procs:
        p.join()
    stats = httpx.get(f"{url}/_sandbox/stats").json()
    client = redis.Redis.from_url(load_settings(_env_file=None).redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()

    calls = [e for e in stats["log"] if e["endpoint"] == "generateContent" and e["t"] <= until]
    done = [e["prompt_tokens"] for e in calls if e["status"] == 200]
    minutes = (until - began) / 60
    rpm, tpm = len(done) / minutes, sum(done) / minutes
    # what we sent, by arrival: every call, and the tokens of those Gemini counted (not the 429s)
    sent = sorted((e["t"], e["prompt_tokens"]) for e in calls)
    most_n, most_w = trailing_max([t for t, _ in sent], [w for _, w in sent])
    own_429 = stats["rate_limited"] - stats["injected_rate_limited"]
    per_page = statistics.mean(done) if done else 0
    return {
        "phase": name,
        "pages": sum(d for d, _ in counts),
        "gave up": sum(f for _, f in counts),
        "rpm": rpm / args.rpm,
        "tpm": tpm / args.tpm,
        "max window requests": most_n / args.rpm,
        "max window tokens": most_w / args.tpm,
        "429s": own_429,
        "tokens per page": per_page,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpm", type=int, default=120)
    parser.add_argument("--tpm", type=int, default=400_000, help="input tokens per minute")
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--processes", type=int, default=4, help="worker processes (two hosts)")
    parser.add_argument("--threads", type=int, default=4, help="pages in flight per process")
    parser.add_argument("--delay", type=float, default=0.5, help="Gemini latency per call, s")
    args = parser.parse_args()

    jpegs = page_backlog()
    key = uuid.uuid4().hex
    with gemini.serve(key, rpm=args.rpm, tpm=args.tpm) as url:
        httpx.post(f"{url}/_sandbox/faults", json={"delay_s": args.delay}).raise_for_status()
        rows = [
            phase("shared limiter", url, key, args, jpegs, (args.rpm, args.tpm)),
            phase("baseline, no limiter", url, key, args, jpegs, (100 * args.rpm, 100 * args.tpm)),
        ]
    demand = args.processes * args.threads * 60 / args.delay
    binding = "RPM" if args.rpm * rows[0]["tokens per page"] < args.tpm else "TPM"
    print(
        f"{len(jpegs)} distinct pages, {args.processes} processes on {len(HOSTS)} hosts x"
        f" {args.threads} in flight, {args.minutes:g} min per phase; limits {args.rpm} RPM,"
        f" {args.tpm} TPM ({binding} binds at {rows[0]['tokens per page']:.0f} tokens a page);"
        f" demand up to {demand:.0f} RPM"
    )
    print(
        "phase                 pages  gave up  RPM/limit  TPM/limit  max 60s req/limit"
        "  max 60s tok/limit  own 429s"
    )
    for r in rows:
        print(
            f"{r['phase']:21} {r['pages']:5} {r['gave up']:8} {r['rpm']:10.2f} {r['tpm']:10.2f}"
            f" {r['max window requests']:18.2f} {r['max window tokens']:18.2f} {r['429s']:9}"
        )
    print("targets (shared limiter): binding ratio >= 0.95, max window <= 1.00, 429s 0")


if __name__ == "__main__":
    main()
