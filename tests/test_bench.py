"""The benchmark's harness at a tiny scale: every piece runs and checks every response. Nothing is timed.

SQLite always; PostgreSQL instead when TEST_DATABASE_URL is set (the `database_url` fixture wipes it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select, text

from bench import dataset, servers
from bench.browser import Browser
from bench.load import LoadResult, LoadSpec, merge, percentiles, run_load, start_offsets
from bench.minimal_sqlmodel import Visit, make_engine, prepare
from bench.scenarios import JOURNEY_STEPS, ScenarioSpec

from .live_server import ROOT

RUN_SECONDS = 120  # a guard against a hung server; the run takes about 20 s


def backend_of(database_url: str) -> str:
    """The bench's name for the fixture's database."""
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


def test_the_benchmark_runs_every_piece_end_to_end_at_a_tiny_scale(database_url, tmp_path):
    """Servers, journeys, baselines, import, seeded ledger, records page and export: results written, no errors."""
    backend = backend_of(database_url)
    clients = "2"
    command = [
        sys.executable, "-m", "bench.run", "--backends", backend, "--clients", clients, "--client-processes", "1",
        "--journeys", "3", "--codes", "10", "--existing-members", "40", "--roster-rows", "100", "--members", "100",
        "--records-requests", "10", "--think", "0.05", "--out", str(tmp_path / "results"),
        *(["--postgres-url", database_url] if backend == "postgresql" else []),
    ]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as run:  # noqa: S603
        try:
            stdout, stderr = run.communicate(timeout=RUN_SECONDS)
        except subprocess.TimeoutExpired:
            run.terminate()  # TERM, not KILL: the bench stops its gunicorn process groups on the way out
            stdout, stderr = run.communicate(timeout=30)
            pytest.fail(f"the benchmark did not finish in {RUN_SECONDS} s:\n{stdout}\n{stderr}")

    assert run.returncode == 0, stdout + stderr
    results = json.loads((tmp_path / "results" / "latest.json").read_text())
    assert results["errors"] == []
    assert results["load"]["existing_members"] == 40 and "already holds 40 members" in stdout
    measured = results["backends"][backend]
    journeys = measured["classgate"]
    assert journeys["units"] == 3 and journeys["errors"] == 0
    assert [journeys["steps"][step]["count"] for step in JOURNEY_STEPS] == [3] * len(JOURNEY_STEPS)
    paced = measured["classgate_paced"]
    assert paced["units"] == 3 and paced["errors"] == 0
    assert any("pausing 0.05 s a page on average" in target["name"] for target in results["targets"])
    assert measured["minimal_sqlmodel"]["units"] == 3 * len(JOURNEY_STEPS)
    assert measured["minimal_sqlmodel_after"]["units"] == 3 * len(JOURNEY_STEPS)
    assert any("mean of its runs before and after" in target["name"] for target in results["targets"])
    assert results["minimal_flask"]["units"] == 3 * len(JOURNEY_STEPS)
    batch = measured["batch"]
    assert batch["import"]["rows"] == 100
    assert batch["seed"]["entries"] == 200
    assert batch["export"]["entries"] == 200 and batch["export"]["head_matches"]
    assert batch["records"]["requests"] == 10
    assert {target["name"].split("]")[0] + "]" for target in results["targets"]} == {f"[{backend}]"}
    # The p99 with no pauses is a target on SQLite; on PostgreSQL it is shown with no verdict.
    (no_pauses,) = [target for target in results["targets"] if target["name"].endswith("no pauses")]
    if backend == "sqlite":
        assert no_pauses["result"] in ("PASS", "MISS") and no_pauses["wanted"] == "< 50.0 ms"
    else:
        assert no_pauses["result"] == "shown" and no_pauses["wanted"] == "none (< 50.0 ms is SQLite's)"
    table = (tmp_path / "results" / "latest.md").read_text()
    assert "| figure | value | target | result |" in table and "CPU" in table
    assert "Classgate journeys" in stdout


def test_a_journey_that_does_not_reach_the_chat_counts_as_an_error(database_url, tmp_path):
    """In a group that waits for a moderator, agreeing leads to 'waiting', not an invite: every journey is an error."""
    env = servers.classgate_env(database_url, tmp_path)
    servers.alembic_upgrade(env)
    setup = dataset.create_school(env, "bench-waits", ("waits-class",), requires_approval=True)
    codes = dataset.import_codes(env, "waits-class", 2, tmp_path)
    with servers.Server("classgate", "app:app", env, tmp_path) as server:
        scenario = ScenarioSpec("journey", server.url, "waits-class", setup.chat_url, database_url, tuple(codes))
        result = run_load("waits", LoadSpec(scenario, clients=1, processes=1, units=2))

    assert result.units == 0
    assert result.errors == 2
    assert all(message.startswith("agree POST: expected 303 to /invite/") for message in result.error_messages)
    assert result.steps["agree POST"].count == 2 and result.steps["invite GET"].count == 0

@contextmanager
def keep_alive_server(body: bytes, seen: list[tuple[int, float]]) -> Iterator[str]:
    """A local HTTP/1.1 server answering every GET with `body`; each request's client port and moment go in `seen`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a client's requests share a connection, so a port

        def do_GET(self) -> None:  # noqa: N802 - the http.server hook
            seen.append((self.client_address[1], time.monotonic()))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_bench_client_opens_a_new_connection_after_so_many_requests():
    """Every few requests a new connection, as a new parent's phone would: a recycled worker cannot keep them all."""
    seen: list[tuple[int, float]] = []
    with keep_alive_server(b"ok", seen) as url:
        churning = Browser(url, requests_per_connection=3)
        for _ in range(7):
            assert churning.get("/").body == b"ok"
        churning.close()
        peers = [port for port, _moment in seen]
        assert [len({*peers[i:i + 3]}) for i in (0, 3, 6)] == [1, 1, 1]
        assert len(set(peers)) == 3  # requests 1-3, 4-6 and 7 each on a connection of their own

        seen.clear()
        keeping = Browser(url)
        for _ in range(7):
            keeping.get("/")
        keeping.close()
        assert len(seen) == 7 and len({port for port, _moment in seen}) == 1


def test_the_clients_of_a_timed_run_start_at_their_own_seeded_moments_in_the_warm_up():
    """Not all at once: clients starting together stay in step through their journeys, a stampede, not a class."""
    seen: list[tuple[int, float]] = []
    with keep_alive_server(b"Hello from Flask", seen) as url:
        spec = LoadSpec(ScenarioSpec("constant", url), clients=6, processes=2, warmup_s=1.6, duration_s=0.2,
                        start_spread_s=0.8)
        result = run_load("spread", spec)

    first_seen: dict[int, float] = {}
    for port, moment in seen:
        first_seen.setdefault(port, moment)  # one kept-alive connection, so one port, per client
    assert result.errors == 0 and len(first_seen) == 6
    offsets = sorted(start_offsets(spec))
    assert offsets[-1] - offsets[0] > 0.3  # the seeded moments themselves are spread out
    firsts = sorted(first_seen.values())
    for offset, moment in zip(offsets, firsts, strict=True):
        assert abs((moment - firsts[0]) - (offset - offsets[0])) < 0.1
    # Counting units, or with no warm-up, every client starts at once.
    assert set(start_offsets(replace(spec, units=10))) == {0.0}
    assert set(start_offsets(replace(spec, warmup_s=0.0))) == {0.0}


def test_the_minimal_sqlmodel_apps_select_reads_its_index_however_large_the_table(database_url):
    """The baseline's cost per request must not grow as its runs fill the table, or the ratio drifts with it."""
    prepare(database_url, rows=20_000)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
            query = select(Visit).where(Visit.key == "k5").order_by(Visit.id.desc()).limit(1)
            compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
            explain = "EXPLAIN" if connection.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
            plan = " ".join(str(row) for row in connection.execute(text(f"{explain} {compiled}")))
    finally:
        engine.dispose()
    assert "ix_bench_visit_key_id" in plan, plan


def test_in_slices_classgate_and_the_baseline_take_turns_and_each_slice_has_codes_of_its_own(database_url, tmp_path):
    """Two slices of a timed run: baseline, Classgate, baseline, Classgate, baseline; no journey reuses a code."""
    backend = backend_of(database_url)
    command = [
        sys.executable, "-m", "bench.run", "--backends", backend, "--clients", "2", "--client-processes", "1",
        "--warmup", "0.5", "--duration", "2", "--slices", "2", "--codes", "400", "--existing-members", "0",
        "--think", "0", "--skip-batch", "--out", str(tmp_path / "results"),
        *(["--postgres-url", database_url] if backend == "postgresql" else []),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_SECONDS, check=False)  # noqa: S603

    assert done.returncode == 0, done.stdout + done.stderr
    order = [line.split("] ", 1)[1].split(":")[0] for line in done.stderr.splitlines()
             if "slice" in line and " clients on " in line]
    assert order == [
        f"minimal SQLModel [{backend}], slice 1 of 3", f"Classgate journeys [{backend}], slice 1 of 2",
        f"minimal SQLModel again [{backend}], slice 2 of 3", f"Classgate journeys [{backend}], slice 2 of 2",
        f"minimal SQLModel again [{backend}], slice 3 of 3",
    ]
    results = json.loads((tmp_path / "results" / "latest.json").read_text())
    assert results["errors"] == []  # a code used twice would fail its journey at the code step
    measured = results["backends"][backend]
    journeys = measured["classgate"]
    assert journeys["window_s"] == pytest.approx(2.0) and journeys["units"] > 0 and journeys["errors"] == 0
    assert journeys["steps"]["all"]["count"] == journeys["requests"] and "latencies" not in journeys
    assert measured["minimal_sqlmodel"]["window_s"] == pytest.approx(2.0)
    assert measured["minimal_sqlmodel_after"]["window_s"] == pytest.approx(2.0)


def test_merged_runs_pool_their_latencies_and_add_their_counts():
    """A slow slice and a fast one: the merged p99 and max come from the slow one, the counts from both."""
    def run(ms: list[float], window: float) -> LoadResult:
        return LoadResult(
            name="part", clients=2, processes=1, window_s=window, units=len(ms), requests=len(ms), errors=0,
            error_messages=[], steps={"GET /": percentiles(ms), "all": percentiles(ms)}, reconnects=1,
            units_started=len(ms), client_cpu_s=0.5, server_recycles=len(ms) // 100,
            latencies={"GET /": ms, "all": ms},
        )

    fast, slow = run([1.0] * 100, 2.0), run([10.0] * 99 + [50.0], 3.0)
    both = merge("both", [fast, slow])
    assert both.name == "both" and both.window_s == 5.0 and both.requests == 200 and both.requests_per_s == 40.0
    assert both.steps["all"].count == 200 and both.steps["all"].p50 == pytest.approx(5.5)
    assert both.steps["GET /"].max == 50.0 and both.steps["GET /"].p99 == pytest.approx(10.0)
    assert both.server_recycles == 1 and both.reconnects == 2
