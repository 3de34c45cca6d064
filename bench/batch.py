"""Batch timings: a class list import, the staff CSV export of the whole ledger, and the records page at scale."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask
from sqlmodel import select

from membership import ledger, schools
from membership.db import session_scope
from membership.models import LedgerHead

from .browser import Browser
from .dataset import FIRST_NAMES, SURNAMES, SchoolSetup, parse_codes, write_roster
from .load import StepStats, percentiles
from .servers import Server

PREAMBLE_LINES = 9  # the export's title, school, id, time, entries, head hash, group, blank line, header
SAMPLE_SECONDS = 0.01


@dataclass
class ImportTiming:
    """`flask roster import` of a class list, timed in this process (no interpreter start-up)."""

    rows: int
    seconds: float


@dataclass
class ExportTiming:
    """GET /school/records.csv of the whole ledger, read to the end and thrown away."""

    entries: int
    seconds: float
    megabytes: float
    peak_rss_mb: float
    rss_method: str
    rss_before_mb: float
    head_matches: bool


@dataclass
class RecordsTiming:
    """GET /school/records (plain, paged and searched) at `members` members, one request at a time."""

    members: int
    requests: int
    stats: StepStats
    by_kind: dict[str, StepStats] = field(default_factory=dict)


class BatchError(RuntimeError):
    """A batch step answered wrongly (a bad status, a short export, a broken chain)."""


def time_roster_import(app: Flask, group_slug: str, rows: int, workdir: Path) -> ImportTiming:
    """Run `roster import --group SLUG FILE.csv` through Flask's CLI runner and time it, checking every code printed."""
    path = write_roster(workdir / f"import-{rows}.csv", rows, start=1_000_000)
    runner = app.test_cli_runner()
    started = time.perf_counter()
    result = runner.invoke(args=["roster", "import", "--group", group_slug, str(path)])
    seconds = time.perf_counter() - started
    if result.exit_code != 0:
        raise BatchError(f"roster import failed ({result.exit_code}): {result.output[-2000:]}")
    printed = len(parse_codes(result.output))
    if printed != rows:
        raise BatchError(f"roster import printed {printed} codes for {rows} children")
    return ImportTiming(rows, seconds)


def verify_chain(school_slug: str) -> tuple[int, float]:
    """`ledger.verify` of the school's whole chain: (entries, seconds); BatchError if it is broken."""
    with session_scope(write=False) as session:
        school = schools.school_by_slug(session, school_slug)
        started = time.perf_counter()
        result = ledger.verify(session, school.id)
        seconds = time.perf_counter() - started
    if not result.ok:
        raise BatchError(f"the seeded chain does not verify: entry {result.broken_seq}: {result.reason}")
    return result.entries, seconds


def sign_in(server: Server, setup: SchoolSetup) -> Browser:
    """A staff member's browser, signed in through /login."""
    browser = Browser(server.url, timeout=120)
    fields = browser.get("/login").hidden_fields()
    reply = browser.post("/login", {**fields, "email": setup.staff_email, "password": setup.staff_password})
    if reply.status != 303 or not reply.path.startswith("/school"):
        raise BatchError(f"staff sign-in answered {reply.status} {reply.location!r}")
    return browser


def time_records(server: Server, setup: SchoolSetup, members: int, requests: int, seed: int = 7) -> RecordsTiming:
    """p95 of the records page over `requests` GETs: first pages, random pages, name searches, a filter."""
    browser = sign_in(server, setup)
    pick = random.Random(seed)  # noqa: S311 - a repeatable mix of pages, not a secret
    pages = max(1, -(-members // 50))
    kinds: dict[str, list[float]] = {}
    try:
        browser.get("/school/records")  # warm the worker's templates and caches
        for number in range(requests):
            kind, path, expected = _records_request(number, pick, pages)
            reply = browser.get(path)
            if reply.status != 200 or (expected and expected.lower() not in reply.text.lower()):
                raise BatchError(f"GET {path} answered {reply.status} without {expected!r}")
            kinds.setdefault(kind, []).append(reply.ms)
    finally:
        browser.close()
    every = [ms for values in kinds.values() for ms in values]
    return RecordsTiming(members, len(every), percentiles(every), {k: percentiles(v) for k, v in kinds.items()})


def _records_request(number: int, pick: random.Random, pages: int) -> tuple[str, str, str]:
    """The n-th request of the mix: (kind, path, text the page must show)."""
    slot = number % 10
    if slot < 4:
        return "first page", "/school/records", "records"
    if slot < 7:
        return "?page=N", f"/school/records?page={pick.randint(2, pages)}", "records"
    if slot < 9:
        first, surname = pick.choice(FIRST_NAMES), pick.choice(SURNAMES)
        query = f"{first} {surname}" if slot == 7 else surname.lower()
        return "?q=name", f"/school/records?q={query.replace(' ', '+')}", surname
    return "?show=left", "/school/records?show=left&page=2", "records"


def time_export(server: Server, setup: SchoolSetup, expected_entries: int) -> ExportTiming:
    """Download the school's whole ledger as CSV; time to the last byte and the serving worker's peak RSS.

    The peak is each worker's VmHWM from /proc, reset just before the download by writing 5 to
    /proc/<pid>/clear_refs; where that is refused, VmRSS sampled every 10 ms stands in for it.
    """
    browser = sign_in(server, setup)
    workers = server.worker_pids()
    before = max(_status_kb(pid, "VmRSS") for pid in workers)
    exact = all(_reset_peak(pid) for pid in workers)
    sampled = {pid: 0 for pid in workers}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(workers, sampled, stop), daemon=True)
    sampler.start()
    try:
        status, size, lines, first, ms = browser.stream("/school/records.csv")
    finally:
        stop.set()
        sampler.join()
        browser.close()
    if status != 200:
        raise BatchError(f"the export answered {status}")
    peak_kb = max(_status_kb(pid, "VmHWM") for pid in workers) if exact else max(sampled.values())
    entries = lines - PREAMBLE_LINES
    if entries != expected_entries:
        raise BatchError(f"the export had {entries} entry lines, expected {expected_entries}")
    return ExportTiming(
        entries=entries, seconds=ms / 1000, megabytes=size / 1e6, peak_rss_mb=peak_kb / 1024,
        rss_method="VmHWM of the gunicorn workers, reset by /proc/<pid>/clear_refs just before" if exact
        else "VmRSS of the gunicorn workers sampled every 10 ms",
        rss_before_mb=before / 1024, head_matches=_head_in(first) == _head_of(setup.slug),
    )


def _head_in(first_chunk: bytes) -> str:
    """The chain head hash the export's preamble carries."""
    for line in first_chunk.decode("utf-8-sig", errors="replace").splitlines()[:PREAMBLE_LINES]:
        if line.startswith("chain_head_hash,"):
            return line.split(",", 1)[1].strip()
    return ""


def _head_of(school_slug: str) -> str:
    """The school's chain head hash in the database."""
    with session_scope(write=False) as session:
        school = schools.school_by_slug(session, school_slug)
        return session.exec(select(LedgerHead.head_hash).where(LedgerHead.school_id == school.id)).one()


def _status_kb(pid: int, field_name: str) -> int:
    """A kB figure from /proc/<pid>/status (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak(pid: int) -> bool:
    """Reset a process's VmHWM to its current RSS (Linux 4.0+, needs the right to write clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _sample_rss(pids: list[int], peaks: dict[int, int], stop: threading.Event) -> None:
    """Keep each process's highest VmRSS until told to stop."""
    while not stop.is_set():
        for pid in pids:
            peaks[pid] = max(peaks[pid], _status_kb(pid, "VmRSS"))
        stop.wait(SAMPLE_SECONDS)
