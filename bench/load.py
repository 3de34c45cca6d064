"""The load generator: concurrent clients in a few processes, a warm-up, then a measured window.

Each client has its own connection (bench.browser) and, by default, its own process: clients that
share a process are threads, and one interpreter's lock then queues their responses and inflates
the latencies measured. Every request is timed from sending to the last byte; a unit (a journey,
or one baseline request) counts only when every response in it was right.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import random
import signal
import statistics
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .browser import Browser, Reply
from .cpu import CpuMeter, CpuShare
from .scenarios import OutOfCodes, Scenario, ScenarioSpec, StepFailed

READY_SECONDS = 60
MAX_MESSAGES = 10  # error messages kept per run (every error is counted)


@dataclass(frozen=True)
class LoadSpec:
    """How to drive one server: which scenario, how many clients, and for how long (or how many units)."""

    scenario: ScenarioSpec
    clients: int = 16
    processes: int = 2
    warmup_s: float = 5.0
    duration_s: float = 20.0
    units: int | None = None  # a fixed number of measured units instead of a time window
    warmup_units: int = 0
    # Each client opens a new connection after this many requests (None: one connection per client).
    requests_per_connection: int | None = None
    # In a timed run, each client starts at its own seeded moment within this many seconds of the
    # warm-up (at most half of it), not all in the same instant: see start_offsets.
    start_spread_s: float = 1.0


@dataclass
class StepStats:
    """Latency of one step over the measured window, in milliseconds."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float


@dataclass
class LoadResult:
    """What one load run measured."""

    name: str
    clients: int
    processes: int
    window_s: float
    units: int
    requests: int
    errors: int
    error_messages: list[str]
    steps: dict[str, StepStats]
    reconnects: int
    units_started: int
    client_cpu_s: float
    mode: str = field(default="window")
    cpu: CpuShare | None = None
    server_recycles: int = 0  # workers gunicorn restarted after max_requests during the run
    # Every measured latency (ms) by step and "all", so runs can be merged; not written to the results.
    latencies: dict[str, list[float]] = field(default_factory=dict, repr=False)

    @property
    def units_per_s(self) -> float:
        """Completed units (journeys or baseline requests) per second of the window."""
        return self.units / self.window_s if self.window_s else 0.0

    @property
    def requests_per_s(self) -> float:
        """HTTP requests answered per second of the window."""
        return self.requests / self.window_s if self.window_s else 0.0

    @property
    def all_steps(self) -> StepStats | None:
        """Latency over every request of the window, whatever its step."""
        return self.steps.get("all")


def percentiles(values: list[float]) -> StepStats:
    """p50, p95, p99 and max of some latencies (inclusive method: exact for small samples)."""
    if not values:
        return StepStats(0, 0.0, 0.0, 0.0, 0.0)
    if len(values) == 1:
        return StepStats(1, values[0], values[0], values[0], values[0])
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return StepStats(len(values), cuts[49], cuts[94], cuts[98], max(values))


def run_load(name: str, spec: LoadSpec, server_seconds: Callable[[], float] | None = None,
             database_seconds: Callable[[], float] | None = None,
             mid_warmup: Callable[[], None] | None = None) -> LoadResult:
    """Drive the scenario with spec.clients clients in spec.processes processes; gather what they measured.

    Given readers of the server's (and the database's) CPU-seconds so far, the result also says how
    the machine's cores were shared between server, database, clients and everything else.
    mid_warmup, if given, is called once halfway through a timed warm-up, while the clients run.
    """
    processes = max(1, min(spec.processes, spec.clients))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    go = context.Event()
    start_at = context.Value("d", 0.0)
    children = []
    finished = False
    try:
        for index in range(processes):
            clients = spec.clients // processes + (1 if index < spec.clients % processes else 0)
            units = None if spec.units is None else _share(spec.units, index, processes)
            warm = _share(spec.warmup_units, index, processes)
            child = context.Process(
                target=_client_process, name=f"bench-client-{index}", daemon=True,
                args=(spec, index, processes, clients, units, warm, go, start_at, results),
            )
            child.start()
            children.append(child)
        _wait_until_ready(results, children)
        start_at.value = time.monotonic() + 0.2
        meter = CpuMeter(server_seconds) if server_seconds else None
        database_before = database_seconds() if database_seconds else 0.0
        go.set()
        if mid_warmup and spec.units is None and spec.warmup_s:
            time.sleep(max(0.0, start_at.value + spec.warmup_s / 2 - time.monotonic()))
            mid_warmup()
        gathered = [results.get(timeout=spec.warmup_s + spec.duration_s + 600) for _ in children]
        database = database_seconds() - database_before if database_seconds else 0.0
        cpu = meter.share(sum(part["cpu"] for part in gathered), database) if meter else None
        finished = True
    finally:
        for child in children:
            child.join(timeout=10 if finished else 0)
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)
    result = _combine(name, spec, processes, start_at.value, gathered)
    result.cpu = cpu
    return result


def _wait_until_ready(results, children: list) -> None:
    """Wait for every client process to say it is ready; raise if one fails or dies first."""
    ready, deadline = 0, time.monotonic() + READY_SECONDS
    while ready < len(children):
        if time.monotonic() > deadline or not all(child.is_alive() for child in children):
            raise RuntimeError("a client process died or did not start in time")
        try:
            message = results.get(timeout=0.5)
        except queue.Empty:
            continue
        if message != "ready":
            raise RuntimeError(f"a client process failed while starting: {message}")
        ready += 1


def start_window(spread_s: float, warmup_s: float) -> float:
    """The seconds a timed run's clients start over: the spread asked for, at most half the warm-up."""
    return max(0.0, min(spread_s, warmup_s / 2))


def start_offsets(spec: LoadSpec) -> list[float]:
    """When each client starts, in seconds after the shared start: seeded, spread over the warm-up's start.

    Clients that all begin their first journey in the same instant stay in step for the whole run,
    because the server answers waiting requests in turn and each client sends its next one only
    then: the details forms arrive close together, queue behind one another, and that step's
    latency is that of a stampede. Started at random moments, they are at different steps of their
    journeys, as the parents of a class are. A run counting units, or with no warm-up, starts them at once.
    """
    spread = start_window(spec.start_spread_s, spec.warmup_s) if spec.units is None else 0.0
    seeded = random.Random(spec.clients)  # noqa: S311 - pacing, not a secret
    return [seeded.uniform(0.0, spread) if spread > 0 else 0.0 for _ in range(spec.clients)]


def _share(total: int, index: int, parts: int) -> int:
    """Client process `index`'s part of `total`."""
    return total // parts + (1 if index < total % parts else 0)


def _client_process(
    spec: LoadSpec, index: int, processes: int, clients: int, units: int | None, warm: int,
    go, start_at, results,
) -> None:
    """One client process: build the scenario, wait for the shared start, run the client threads, report."""
    # Ctrl-C reaches the whole foreground process group: the parent ends these processes itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        scenario = spec.scenario.share(index, processes).build(index)
    except Exception:  # noqa: BLE001 - reported to the parent, which fails the run
        results.put(traceback.format_exc())
        return
    results.put("ready")
    go.wait()
    try:
        offsets = start_offsets(spec)
        # Client n of this process is client n * processes + index of the whole run.
        mine = [offsets[n * processes + index] for n in range(clients)]
        results.put(_Clients(spec, scenario, units, warm, start_at.value).run(mine))
    finally:
        scenario.close()


class _Clients:
    """The client threads of one process, sharing a ticket counter, and everything they measured."""

    def __init__(self, spec: LoadSpec, scenario: Scenario, units: int | None, warm: int, begin: float) -> None:
        self.spec, self.scenario, self.units, self.warm, self.begin = spec, scenario, units, warm, begin
        self.measure_to = begin + spec.warmup_s + spec.duration_s
        self.step_index = {name: number for number, name in enumerate(scenario.steps)}
        self.tickets = itertools.count()
        self.lock = threading.Lock()
        self.samples: list[tuple[int, float, float, bool]] = []  # (step, end, ms, unit measured in count mode)
        self.done: list[tuple[float, float, bool]] = []  # (start, end, measured) of each unit that succeeded
        self.errors: list[str] = []
        self.counters = {"errors": 0, "reconnects": 0, "started": 0}

    def run(self, offsets: list[float]) -> dict:
        """Run one client thread per start offset to the end of the window (or of the units); what they
        measured, picklable.
        """
        cpu_before = time.process_time()
        threads = [threading.Thread(target=self.client, args=(self.begin + offset,), name=f"client-{n}", daemon=True)
                   for n, offset in enumerate(offsets)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"samples": self.samples, "done": self.done, "errors": self.errors, "counters": self.counters,
                "steps": self.scenario.steps, "cpu": time.process_time() - cpu_before, "pid": os.getpid()}

    def next_ticket(self) -> int | None:
        """The next unit's number, or None when this client should stop."""
        with self.lock:
            ticket = next(self.tickets)
        if self.units is not None:
            return ticket if ticket < self.warm + self.units else None
        return ticket if time.monotonic() < self.measure_to else None

    def client(self, start: float) -> None:
        """One client: its own connection and cookies, from `start`, unit after unit until told to stop."""
        browser = Browser(self.spec.scenario.base_url, requests_per_connection=self.spec.requests_per_connection)
        time.sleep(max(0.0, start - time.monotonic() - 0.005))
        while time.monotonic() < start:
            time.sleep(0.001)
        try:
            while (ticket := self.next_ticket()) is not None:
                measured = self.units is not None and ticket >= self.warm
                mine: list[tuple[int, float, float, bool]] = []

                def record(step: str, reply: Reply, measured: bool = measured, mine: list = mine) -> None:
                    mine.append((self.step_index[step], time.monotonic(), reply.ms, measured))

                started = time.monotonic()
                try:
                    self.scenario.run(browser, ticket, record)
                except OutOfCodes as exc:
                    self.error(f"{exc} (raise --codes)")
                    return
                except StepFailed as exc:
                    self.error(str(exc))
                    browser.close()
                except Exception as exc:  # noqa: BLE001 - a refused connection or a time-out is an error, not a crash
                    self.error(f"{type(exc).__name__}: {exc}")
                    browser.close()
                else:
                    with self.lock:
                        self.done.append((started, time.monotonic(), measured))
                finally:
                    with self.lock:
                        self.samples.extend(mine)
                        self.counters["started"] += 1
        finally:
            with self.lock:
                self.counters["reconnects"] += browser.reconnects
            browser.close()

    def error(self, message: str) -> None:
        """Count an error and keep its message (the first few)."""
        with self.lock:
            self.counters["errors"] += 1
            if len(self.errors) < MAX_MESSAGES:
                self.errors.append(message)


def _combine(name: str, spec: LoadSpec, processes: int, begin: float, gathered: list[dict]) -> LoadResult:
    """Merge the client processes' measurements into one result for the measured window."""
    steps = gathered[0]["steps"]
    samples = [sample for part in gathered for sample in part["samples"]]
    done = [unit for part in gathered for unit in part["done"]]
    errors = sum(part["counters"]["errors"] for part in gathered)
    messages = [message for part in gathered for message in part["errors"]][:MAX_MESSAGES]
    if spec.units is None:
        low, high = begin + spec.warmup_s, begin + spec.warmup_s + spec.duration_s
        kept = [s for s in samples if low <= s[1] < high]
        units = sum(1 for _start, end, _m in done if low <= end < high)
        window, mode = spec.duration_s, "window"
    else:
        measured = [(start, end) for start, end, m in done if m]
        kept = [s for s in samples if s[3]]
        units = len(measured)
        window = (max(e for _s, e in measured) - min(s for s, _e in measured)) if measured else 0.0
        mode = "count"
    latencies = {name: [s[2] for s in kept if s[0] == index] for index, name in enumerate(steps)}
    latencies["all"] = [s[2] for s in kept]
    return LoadResult(
        name=name, clients=spec.clients, processes=processes, window_s=window, units=units, requests=len(kept),
        errors=errors, error_messages=messages, steps={step: percentiles(ms) for step, ms in latencies.items()},
        reconnects=sum(part["counters"]["reconnects"] for part in gathered),
        units_started=sum(part["counters"]["started"] for part in gathered),
        client_cpu_s=sum(part["cpu"] for part in gathered), mode=mode, latencies=latencies,
    )


def merge(name: str, parts: list[LoadResult]) -> LoadResult:
    """Several runs of one server as one: windows, counts and errors added, latencies pooled, CPU shares
    weighted by each run's length. A server's recycles are counted from its start, so the last run's count stands.
    """
    if len(parts) == 1:
        return replace(parts[0], name=name)
    first = parts[0]
    latencies = {step: [ms for part in parts for ms in part.latencies.get(step, [])] for step in first.latencies}
    shares = [part.cpu for part in parts if part.cpu is not None]
    cpu = None
    if shares:
        seconds = sum(share.seconds for share in shares)

        def mean(attribute: str) -> float:
            return sum(getattr(share, attribute) * share.seconds for share in shares) / seconds if seconds else 0.0

        cpu = CpuShare(seconds, mean("server_cores"), mean("database_cores"), mean("client_cores"),
                       mean("other_cores"), shares[0].machine_cores)
    return LoadResult(
        name=name, clients=first.clients, processes=first.processes,
        window_s=sum(part.window_s for part in parts), units=sum(part.units for part in parts),
        requests=sum(part.requests for part in parts), errors=sum(part.errors for part in parts),
        error_messages=[message for part in parts for message in part.error_messages][:MAX_MESSAGES],
        steps={step: percentiles(ms) for step, ms in latencies.items()},
        reconnects=sum(part.reconnects for part in parts), units_started=sum(part.units_started for part in parts),
        client_cpu_s=sum(part.client_cpu_s for part in parts), mode=first.mode, cpu=cpu,
        server_recycles=max(part.server_recycles for part in parts), latencies=latencies,
    )
