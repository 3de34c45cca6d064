"""`make bench` / `python -m bench.run`: the whole benchmark, printed as a table and saved in bench/results/.

For each database (SQLite always; PostgreSQL when it answers): the minimal SQLModel app, then
Classgate's parent journeys, then the batch timings; the minimal Flask app once. Any error (a
wrong response, a server error in a log, a failed step) fails the run; a missed target does not.
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from . import batch, dataset, report
from .databases import (
    DEFAULT_POSTGRES_URL,
    Backend,
    analyze_database,
    ensure_database,
    postgres_answers,
    postgres_seconds,
)
from .load import LoadResult, LoadSpec, merge, run_load, start_window
from .minimal_sqlmodel import prepare as prepare_minimal
from .scenarios import JOURNEY_STEPS, ScenarioSpec
from .servers import ROOT, Server, alembic_upgrade, classgate_env, gunicorn_settings

JOURNEY_SCHOOL = "bench-journeys"
JOURNEY_GROUP = "bench-class"
PACED_GROUP = "bench-paced-class"
NEIGHBOUR_SCHOOL = "bench-neighbours"
NEIGHBOUR_CLASS_SIZE = 30
BATCH_SCHOOL = "bench-records"
BATCH_GROUPS = 25
REQUESTS_PER_JOURNEY = len(JOURNEY_STEPS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; the defaults are the figures the targets are stated at."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    load = parser.add_argument_group("load")
    load.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    load.add_argument("--client-processes", type=int, default=None,
                      help="processes the clients are spread over (default: one per client)")
    load.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up before measuring (default 5)")
    load.add_argument("--start-spread", type=float, default=1.0,
                      help="each client starts at a seeded random moment within this many seconds of the warm-up "
                           "(at most half of it), so clients are at different steps of their journeys "
                           "(default 1; 0 starts them all at once)")
    load.add_argument("--duration", type=float, default=20.0, help="seconds measured (default 20)")
    load.add_argument("--slices", type=int, default=3,
                      help="Classgate's measured seconds and the minimal SQLModel app's are cut into this many "
                           "slices, run in turn (baseline, Classgate, baseline, … baseline), each with its own "
                           "warm-up (default 3; --journeys runs one)")
    load.add_argument("--journeys", type=int, default=None,
                      help="measure this many journeys (baselines: as many requests) instead of a time window")
    load.add_argument("--warmup-journeys", type=int, default=0, help="with --journeys: unmeasured ones first")
    load.add_argument("--existing-members", type=int, default=3000,
                      help="members already in another school's classes of 30 before the journeys start, so they run "
                           "on a database in use (default 3000; 0 for none)")
    load.add_argument("--codes", type=int, default=4000, help="enrolment codes imported for the journeys")
    load.add_argument("--requests-per-connection", type=int, default=REQUESTS_PER_JOURNEY,
                      help="each client opens a new connection after this many requests: one per parent's journey, "
                           f"and as often for the baselines (default {REQUESTS_PER_JOURNEY}; 0 keeps one per client)")
    load.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY, default 2)")
    load.add_argument("--think", type=float, default=1.0,
                      help="a second, paced journey run: each client pauses this many seconds on average "
                           "(0.5 to 1.5 times it) before a journey and after every page (default 1; 0 skips it)")
    data = parser.add_argument_group("databases")
    data.add_argument("--backends", default="sqlite,postgresql",
                      help="comma-separated; postgresql is skipped when it does not answer (default both)")
    data.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                      help=f"PostgreSQL database, created if missing, schema reset (default {DEFAULT_POSTGRES_URL})")
    sizes = parser.add_argument_group("batch")
    sizes.add_argument("--roster-rows", type=int, default=10_000, help="children in the timed import")
    sizes.add_argument("--members", type=int, default=50_000,
                       help="members seeded for the records page; each has two ledger entries for the export")
    sizes.add_argument("--records-requests", type=int, default=200, help="records page requests timed")
    sizes.add_argument("--skip-batch", action="store_true", help="only the load runs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where latest.json/.md go")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp folder (databases, server logs)")
    return parser.parse_args(argv)


def progress(message: str) -> None:
    """A progress line on stderr, so stdout keeps only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Run:
    """One benchmark run: its settings, temp folder, results and errors."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.errors: list[str] = []
        self.backends: dict[str, dict] = {}
        self.versions: dict[str, str] = {}
        self.flask: LoadResult | None = None

    @property
    def slices(self) -> int:
        """How many turns Classgate and the minimal SQLModel app take (one when counting journeys)."""
        return 1 if self.args.journeys is not None else max(1, self.args.slices)

    def spec(self, scenario: ScenarioSpec, requests_per_unit: int = 1, slices: int = 1) -> LoadSpec:
        """The load settings for a scenario; in count mode a baseline makes as many requests as the journeys.

        With slices, the measured seconds are shared between that many runs (the warm-up is not).
        """
        a = self.args
        units = None if a.journeys is None else a.journeys * (REQUESTS_PER_JOURNEY // requests_per_unit)
        warm = a.warmup_journeys * (REQUESTS_PER_JOURNEY // requests_per_unit)
        return LoadSpec(scenario, a.clients, a.client_processes or a.clients, a.warmup, a.duration / slices, units,
                        warm, a.requests_per_connection or None, a.start_spread)

    def drive(self, label: str, server: Server, scenario: ScenarioSpec, per_unit: int = 1,
              postgres_url: str = "", slices: int = 1) -> LoadResult:
        """Run the load against a server; its errors and the server log's errors count against the run."""
        progress(f"{label}: {self.args.clients} clients on {server.url}")
        database = functools.partial(postgres_seconds, postgres_url) if postgres_url else None
        # On PostgreSQL, planner statistics refreshed halfway through the warm-up, as autovacuum keeps
        # them in a running deployment: the journeys fill a class from empty to thousands of members
        # within seconds, and plans made for an empty table would be measured instead of Classgate.
        analyze = functools.partial(analyze_database, postgres_url) if postgres_url else None
        result = run_load(label, self.spec(scenario, per_unit, slices), server.cpu_seconds, database, analyze)
        result.server_recycles = server.restarts()
        self.errors += [f"{label}: {message}" for message in result.error_messages]
        if result.errors > len(result.error_messages):
            self.errors.append(f"{label}: {result.errors - len(result.error_messages)} more errors")
        self.errors += [f"{label} server log: {line}" for line in server.errors()[:10]]
        if result.units == 0:
            self.errors.append(f"{label}: nothing completed in the measured window")
        return result

    def paced_codes(self) -> int:
        """Codes enough for the paced run: every client's journeys over the window at the shortest pauses."""
        a = self.args
        if a.journeys is not None:
            return 2 * (a.journeys + a.warmup_journeys) + a.clients
        per_client = (a.warmup + a.duration) / (REQUESTS_PER_JOURNEY * a.think * 0.5) + 1
        return int(2 * a.clients * per_client) + a.clients

    def minimal_flask(self) -> None:
        """The constant-string baseline (no database)."""
        with Server("minimal-flask", "bench.minimal_flask:app", dict(os.environ), self.workdir,
                    self.args.workers, health_path="/") as server:
            self.flask = self.drive("minimal Flask", server, ScenarioSpec("constant", server.url))

    def backend(self, backend: Backend) -> None:
        """The SQLModel baseline and Classgate's journeys in turn, the paced journeys, and the batch timings.

        The baseline runs just before and just after each of Classgate's slices, and the ratio is taken
        to the mean of the two: this machine's speed drifts by a fifth or more within minutes, and one
        baseline run a minute away from Classgate's would carry that drift into the ratio. Slices
        (--slices) spread both over the same minutes, so a slow stretch falls on both, not on one.
        """
        results: dict = {}
        self.backends[backend.name] = results
        self.versions[backend.name] = backend.version()
        backend.reset()
        prepare_minimal(backend.baseline_url)
        minimal_env = {**os.environ, "BENCH_DATABASE_URL": backend.baseline_url}
        with Server(f"minimal-sqlmodel-{backend.name}", "bench.minimal_sqlmodel:app", minimal_env, self.workdir,
                    self.args.workers) as minimal:
            visits = ScenarioSpec("visit", minimal.url)
            slices = self.slices

            def part(number: int, runs: int = slices) -> str:
                return f", slice {number} of {runs}" if slices > 1 else ""

            backend.settle()
            before = [self.drive(f"minimal SQLModel [{backend.name}]{part(1, slices + 1)}", minimal, visits, 1,
                                 backend.postgres_url, slices)]
            env = classgate_env(backend.classgate_url, self.workdir)
            progress(f"Classgate [{backend.name}]: alembic upgrade head, school, group and codes through the CLI")
            alembic_upgrade(env)
            setup = dataset.create_school(env, JOURNEY_SCHOOL, (JOURNEY_GROUP, PACED_GROUP))
            self.existing_members(env)
            started = time.perf_counter()
            codes = dataset.import_codes(env, JOURNEY_GROUP, self.args.codes, self.workdir)
            results["codes_cli_s"] = time.perf_counter() - started
            paced_codes = []
            if self.args.think:
                paced_codes = dataset.import_codes(env, PACED_GROUP, self.paced_codes(), self.workdir)
            with Server(f"classgate-{backend.name}", "app:app", env, self.workdir, self.args.workers) as server:
                journeys, after = [], []
                for number in range(1, slices + 1):
                    # Each slice its own codes and emails: a run numbers its journeys from 0 again.
                    scenario = ScenarioSpec("journey", server.url, JOURNEY_GROUP, setup.chat_url,
                                            backend.classgate_url, tuple(codes[number - 1::slices]), run=number)
                    backend.settle()
                    journeys.append(self.drive(f"Classgate journeys [{backend.name}]{part(number)}", server,
                                               scenario, REQUESTS_PER_JOURNEY, backend.postgres_url, slices))
                    backend.settle()
                    label = f"minimal SQLModel again [{backend.name}]{part(number + 1, slices + 1)}"
                    after.append(self.drive(label, minimal, visits, 1, backend.postgres_url, slices))
                before += after[:-1]  # the baseline between two slices is after one and before the next
                results["classgate"] = merge(f"Classgate journeys [{backend.name}]", journeys)
                results["minimal_sqlmodel"] = merge(f"minimal SQLModel [{backend.name}]", before)
                results["minimal_sqlmodel_after"] = merge(f"minimal SQLModel again [{backend.name}]", after)
                if self.args.think:
                    scenario = ScenarioSpec("journey", server.url, PACED_GROUP, setup.chat_url,
                                            backend.classgate_url, tuple(paced_codes), self.args.think)
                    results["classgate_paced"] = self.drive(
                        f"Classgate paced journeys [{backend.name}]", server, scenario, REQUESTS_PER_JOURNEY,
                        backend.postgres_url)
        if not self.args.skip_batch:
            results["batch"] = self.batch(backend, env)

    def existing_members(self, env: dict[str, str]) -> None:
        """Members of another school, in classes of 30, with their agreements: the journeys' database is in use.

        On PostgreSQL this also gives the planner statistics of a working database: started from
        empty tables, it would plan for empty tables while the journeys filled them.
        """
        members = self.args.existing_members
        if not members:
            return
        classes = tuple(f"class-{n:03d}" for n in range(1, -(-members // NEIGHBOUR_CLASS_SIZE) + 1))
        progress(f"{members:,} members in {len(classes)} classes of another school")
        setup = dataset.create_school(env, NEIGHBOUR_SCHOOL, classes)
        with dataset.classgate_app(env):
            dataset.seed_members(setup, members)

    def batch(self, backend: Backend, env: dict[str, str]) -> dict:
        """Roster import, the seeded ledger and its export, and the records page, on a school of their own."""
        a, out = self.args, {}
        progress(f"batch [{backend.name}]: a school with {a.members:,} members and {2 * a.members:,} ledger entries")
        groups = tuple(f"records-{n:02d}" for n in range(1, BATCH_GROUPS + 1))
        setup = dataset.create_school(env, BATCH_SCHOOL, (*groups, "roster-import"))
        setup = dataset.SchoolSetup(setup.slug, groups, setup.chat_url, setup.staff_email)
        with dataset.classgate_app(env) as app:
            out["import"] = batch.time_roster_import(app, "roster-import", a.roster_rows, self.workdir)
            started = time.perf_counter()
            entries = dataset.seed_members(setup, a.members)
            seeded = time.perf_counter() - started
            backend.analyze()
            chained, verify_s = batch.verify_chain(setup.slug)
            out["seed"] = {"members": a.members, "entries": entries, "seconds": seeded, "verify_s": verify_s}
            progress(f"batch [{backend.name}]: records page and export on a fresh server")
            with Server(f"classgate-batch-{backend.name}", "app:app", env, self.workdir, a.workers) as server:
                out["records"] = batch.time_records(server, setup, a.members, a.records_requests)
                out["export"] = batch.time_export(server, setup, chained)
                self.errors += [f"batch [{backend.name}] server log: {line}" for line in server.errors()[:10]]
        if not out["export"].head_matches:
            self.errors.append(f"batch [{backend.name}]: the export's head hash differs from the database's")
        return out

    def targets(self) -> list[report.Target]:
        """Every target, for every database measured."""
        found = []
        for name, results in self.backends.items():
            journeys, minimal = results.get("classgate"), baseline_rate(results)
            if journeys and minimal:
                found.append(report.Target(
                    f"[{name}] journey req/s / minimal SQLModel req/s (mean of its runs before and after)",
                    journeys.requests_per_s / minimal, report.RATIO_TARGET, "", higher_is_better=True))
            if journeys:
                worst = max(JOURNEY_STEPS, key=lambda step: journeys.steps[step].p99)
                found.append(report.Target(
                    f"[{name}] slowest journey step p99 ({worst}), {journeys.clients} clients, no pauses",
                    journeys.steps[worst].p99, report.STEP_P99_MS, " ms",
                    shown_only="" if name == "sqlite" else "SQLite"))
            paced = results.get("classgate_paced")
            if paced:
                worst = max(JOURNEY_STEPS, key=lambda step: paced.steps[step].p99)
                found.append(report.Target(
                    f"[{name}] slowest journey step p99 ({worst}), {paced.clients} clients pausing "
                    f"{self.args.think:g} s a page on average", paced.steps[worst].p99, report.STEP_P99_MS, " ms"))
            done = results.get("batch") or {}
            if "import" in done:
                found.append(report.Target(f"[{name}] roster import of {done['import'].rows:,}", done["import"].seconds,
                                           report.IMPORT_S, " s"))
            if "export" in done:
                e = done["export"]
                found.append(report.Target(f"[{name}] export of {e.entries:,} entries", e.seconds, report.EXPORT_S,
                                           " s"))
                found.append(report.Target(f"[{name}] export worker peak RSS", e.peak_rss_mb, report.EXPORT_RSS_MB,
                                           " MB"))
            if "records" in done:
                r = done["records"]
                found.append(report.Target(f"[{name}] records page p95 at {r.members:,} members", r.stats.p95,
                                           report.RECORDS_P95_MS, " ms"))
        return found

    def throughput_rows(self) -> list[dict]:
        """One row per load run, with Classgate's journey req/s divided by each baseline's."""
        journeys = {name: r["classgate"] for name, r in self.backends.items() if r.get("classgate")}

        def row(label: str, result: LoadResult, ratio: str) -> dict:
            every = result.steps["all"]
            return {"label": label, "units_per_s": result.units_per_s, "requests_per_s": result.requests_per_s,
                    "p50": every.p50, "p95": every.p95, "p99": every.p99, "errors": result.errors, "ratio": ratio,
                    "cpu": result.cpu.text() if result.cpu else "", "recycles": result.server_recycles}

        def ratio(result: LoadResult, names: list[str]) -> str:
            if not result.requests_per_s:
                return ""
            parts = [f"{journeys[n].requests_per_s / result.requests_per_s:.2f}" for n in names]
            if len(parts) == 1:
                return parts[0]
            return ", ".join(f"{part} ({name})" for part, name in zip(parts, names, strict=True))

        rows = []
        if self.flask:
            rows.append(row("minimal Flask (constant)", self.flask, ratio(self.flask, list(journeys))))
        for name, results in self.backends.items():
            # In the order they ran: the baseline, Classgate, the baseline again.
            for key, label in (("minimal_sqlmodel", "minimal SQLModel"), ("classgate", "Classgate journeys"),
                               ("minimal_sqlmodel_after", "minimal SQLModel again")):
                if results.get(key):
                    mine = "1.00" if key == "classgate" else ratio(results[key], [name] if name in journeys else [])
                    rows.append(row(f"{label} [{name}]", results[key], mine))
            if results.get("classgate_paced"):
                rows.append(row(f"Classgate, paced [{name}]", results["classgate_paced"], ""))
        return rows


def baseline_rate(results: dict) -> float:
    """The minimal SQLModel app's requests/s: the mean of its runs before and after Classgate's (0 if none)."""
    rates = [results[key].requests_per_s for key in ("minimal_sqlmodel", "minimal_sqlmodel_after")
             if results.get(key) and results[key].requests_per_s]
    return sum(rates) / len(rates) if rates else 0.0


def _count(number: int, noun: str) -> str:
    """'1 client', '16 clients', '2 processes'."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}{'es' if noun.endswith('s') else 's'}"


def backends_to_run(args: argparse.Namespace, workdir: Path) -> tuple[list[Backend], list[str]]:
    """The databases asked for that are there; notes on any skipped."""
    wanted = [name.strip() for name in args.backends.split(",") if name.strip()]
    chosen, notes = [], []
    for name in wanted:
        if name == "sqlite":
            folder = workdir / "sqlite"
            folder.mkdir()
            chosen.append(Backend("sqlite", folder))
        elif name == "postgresql":
            if postgres_answers(args.postgres_url):
                ensure_database(args.postgres_url)
                folder = workdir / "postgresql"
                folder.mkdir()
                chosen.append(Backend("postgresql", folder, args.postgres_url))
            else:
                notes.append(f"PostgreSQL did not answer at {args.postgres_url}: skipped")
        else:
            raise SystemExit(f"unknown backend {name!r} (sqlite, postgresql)")
    return chosen, notes


def main(argv: list[str] | None = None) -> int:
    """Run everything, print the table, write the results; exit 1 on any error."""
    args = parse_args(argv)
    # TERM (a CI runner, kill) unwinds like Ctrl-C: every server's process group is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    clock = time.perf_counter()
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="classgate-bench-"))
    run = Run(args, workdir)
    notes: list[str] = []
    try:
        chosen, notes = backends_to_run(args, workdir)
        for note in notes:
            progress(note)
        phases = [("minimal Flask", run.minimal_flask)]
        phases += [(backend.name, functools.partial(run.backend, backend)) for backend in chosen]
        for name, phase in phases:
            try:
                phase()
            except (RuntimeError, OSError, batch.BatchError) as exc:
                # A server that did not start, a command that failed: record it and go on to the next database.
                run.errors.append(f"[{name}] {type(exc).__name__}: {exc}")
    finally:
        if args.keep_temp:
            progress(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results = summary(args, run, notes, started_at, time.perf_counter() - clock, load_before)
    report.write(results, args.out)
    print(report.text_table(results))
    return 1 if run.errors else 0


def summary(args: argparse.Namespace, run: Run, notes: list[str], started_at: str, wall_s: float,
            load_before: str) -> dict:
    """Everything the run found, with the settings and machine it ran with, for the table and the files."""
    settings = gunicorn_settings(args.workers)
    spread = start_window(args.start_spread, args.warmup)
    return {
        "started_at": started_at,
        "command": "make bench" if os.environ.get("MAKELEVEL") else "python -m bench.run " + shlex.join(sys.argv[1:]),
        "wall_s": wall_s,
        "machine": report.machine(run.versions),
        "load_average": [load_before, " ".join(f"{x:.2f}" for x in os.getloadavg())],
        "gunicorn": settings,
        "gunicorn_text": (
            f"gunicorn -c gunicorn.conf.py with WEB_CONCURRENCY={args.workers}: workers={settings['workers']}, "
            + (f"threads={settings['threads']} (gthread), keepalive={settings['keepalive']} s, "
               if settings["worker_class"] == "gthread"
               else f"{settings['worker_class']} workers (one request at a time, each connection closed after its "
                    "response), ")
            + f"max_requests={settings['max_requests']}±{settings['max_requests_jitter']}, access log to a file"
        ),
        "load": {"existing_members": args.existing_members,
                 "clients": args.clients, "client_processes": args.client_processes, "warmup_s": args.warmup,
                 "start_spread_s": args.start_spread,
                 "duration_s": args.duration, "journeys": args.journeys,
                 "requests_per_connection": args.requests_per_connection, "warmup_journeys": args.warmup_journeys,
                 "think_s": args.think},
        "load_text": (
            f"{_count(args.clients, 'client')} in "
            f"{_count(min(args.client_processes or args.clients, args.clients), 'process')}, "
            + (f"each on an http.client connection kept alive while the server keeps it, and replaced at least "
               f"every {args.requests_per_connection} requests (a new one for each parent's journey, as often for "
               "the baselines); "
               if args.requests_per_connection else "one kept-alive http.client connection each; ")
            + (f"{args.journeys} measured journeys (baselines: {args.journeys * REQUESTS_PER_JOURNEY} requests) "
               f"after {args.warmup_journeys} unmeasured" if args.journeys is not None
               else f"{args.warmup:g} s warm-up, {args.duration:g} s measured"
               + (f", each client starting at its own seeded moment in the first {spread:g} s of the warm-up"
                  if spread > 0 else ", every client starting at once"))
            + f"; the clients share the {os.cpu_count()} cores with the servers"
            + (f"; Classgate's database already holds {args.existing_members:,} members of another school"
               if args.existing_members else "")
            + (f"; then Classgate again with each client pausing {args.think:g} s on average (0.5 to 1.5 times it, "
               "seeded) before each journey and after every page (paced)"
               if args.think else "")
        ),
        "throughput": run.throughput_rows(),
        "minimal_flask": run.flask,
        "backends": run.backends,
        "targets": run.targets(),
        "notes": notes,
        "errors": run.errors,
        "json_path": str(args.out / "latest.json"),
        "md_path": str(args.out / "latest.md"),
    }


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        progress("interrupted: every server this run started has been stopped")
        sys.exit(130)
