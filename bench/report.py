"""The machine a run happened on, the targets, and the run's results as a table, JSON and Markdown."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
from dataclasses import asdict, dataclass, is_dataclass
from importlib import metadata
from pathlib import Path

from .load import LoadResult, StepStats
from .scenarios import JOURNEY_STEPS
from .servers import ROOT

# The targets: figure, comparison, threshold. Checked on every database measured, except the
# journey step p99 with no pauses, which is set for SQLite: PostgreSQL's figure is shown beside it,
# with no verdict (on two cores the PostgreSQL server shares them with the app and the clients).
RATIO_TARGET = 0.7
STEP_P99_MS = 50.0
IMPORT_S = 2.0
EXPORT_S = 5.0
EXPORT_RSS_MB = 150.0
RECORDS_P95_MS = 100.0

# The journey runs a backend can have: as fast as the clients can go, and paced (a pause after each page).
JOURNEY_RUNS = (("classgate", "journey steps"), ("classgate_paced", "journey steps, paced"))


@dataclass
class Target:
    """One target's outcome."""

    name: str
    value: float
    limit: float
    unit: str
    higher_is_better: bool = False
    shown_only: str = ""  # set for a figure shown beside a target that is not its own: where the target applies

    @property
    def passed(self) -> bool:
        """True when the figure meets the target (always, for a figure shown only)."""
        if self.shown_only:
            return True
        return self.value >= self.limit if self.higher_is_better else self.value < self.limit

    @property
    def verdict(self) -> str:
        """PASS or MISS; 'shown' for a figure shown only."""
        if self.shown_only:
            return "shown"
        return "PASS" if self.passed else "MISS"

    @property
    def wanted(self) -> str:
        """The target as a condition: '≥ 0.70', '< 50 ms'; for a figure shown only, whose target it is."""
        condition = f"{'≥' if self.higher_is_better else '<'} {_number(self.limit)}{self.unit}"
        return f"none ({condition} is {self.shown_only}'s)" if self.shown_only else condition


def machine(versions: dict[str, str]) -> dict[str, object]:
    """CPU model and count, memory, OS, Python, the database versions given and the main libraries' versions."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:"))
    except (OSError, StopIteration):
        mem_kb = 0
    libraries = {name: _version(name) for name in ("Flask", "SQLAlchemy", "sqlmodel", "gunicorn", "psycopg")}
    return {
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite_library": sqlite3.sqlite_version,
        "databases": versions,
        "libraries": libraries,
        "commit": _git("rev-parse", "--short", "HEAD").strip(),
        "uncommitted_changes": [line[3:] for line in _git("status", "--porcelain").splitlines()
                                if not line[3:].startswith(("bench/", "tests/test_bench.py"))],
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    """Read-only git output ('' outside a checkout)."""
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)  # noqa: S603, S607
    except OSError:
        return ""
    return done.stdout.rstrip()


def _number(value: float) -> str:
    """A figure as people read it: 1,234 / 56.7 / 0.83."""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def to_plain(value: object) -> object:
    """Dataclasses (with their useful properties) as plain dicts and lists for JSON."""
    if isinstance(value, LoadResult):
        plain = asdict(value)
        del plain["latencies"]
        plain.update(units_per_s=value.units_per_s, requests_per_s=value.requests_per_s)
        return plain
    if isinstance(value, Target):
        return {**asdict(value), "wanted": value.wanted, "result": value.verdict}
    if is_dataclass(value) and not isinstance(value, type):
        return {key: to_plain(item) for key, item in asdict(value).items()}
    if isinstance(value, dict):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    if isinstance(value, float):
        return round(value, 3)
    return value


def _stats_row(label: str, stats: StepStats, extra: str = "") -> str:
    return (f"  {label:<34}{stats.count:>8}{_number(stats.p50):>9}{_number(stats.p95):>9}{_number(stats.p99):>9}"
            f"{_number(stats.max):>9}{extra}")


def text_table(run: dict) -> str:
    """The run as a readable table for the terminal."""
    out = []
    m = run["machine"]
    out.append(f"Classgate benchmark, {run['started_at']}, commit {m['commit']}"
               + (f" with uncommitted changes to {', '.join(m['uncommitted_changes'])}"
                  if m["uncommitted_changes"] else ""))
    out.append(f"Machine: {m['cpu_model']} x {m['cpu_count']}, {m['ram_gib']} GiB RAM, {m['os']}, "
               f"Python {m['python']}, " + ", ".join(m["databases"].values()))
    out.append(f"Load average before/after: {run['load_average'][0]} / {run['load_average'][1]}  "
               "(other work on the machine shows up in the figures)")
    out.append("Server: " + run["gunicorn_text"])
    out.append("Load: " + run["load_text"])
    out.extend(f"Note: {note}" for note in run["notes"])
    out.append("")
    out.append(f"  {'throughput (all requests)':<36}{'units/s':>9}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
               f"{'errors':>8}{'recycles':>10}  Classgate journey req/s / this")
    for row in run["throughput"]:
        out.append(f"  {row['label']:<36}{_number(row['units_per_s']):>9}{_number(row['requests_per_s']):>9}"
                   f"{_number(row['p50']):>9}{_number(row['p95']):>9}{_number(row['p99']):>9}{row['errors']:>8}"
                   f"{row['recycles']:>10}  {row['ratio']}")
    out.append("  (recycles: workers gunicorn.conf.py's max_requests restarted during the run)")
    out.append("")
    out.append("  CPU during each load run (warm-up included), average cores busy:")
    out.extend(f"  {row['label']:<36}{row['cpu']}" for row in run["throughput"] if row["cpu"])
    for name, backend in run["backends"].items():
        for key, title in JOURNEY_RUNS:
            journeys = backend.get(key)
            if not journeys:
                continue
            out.append("")
            out.append(f"  {title} [{name}], ms".ljust(36) + f"{'count':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}")
            for step in (*JOURNEY_STEPS, "all"):
                out.append(_stats_row(step, journeys.steps[step]))
            out.append(f"  {journeys.units} journeys in {journeys.window_s:.1f} s; connections reopened: "
                       f"{journeys.reconnects}; the codes came from `flask roster import` "
                       f"({backend['codes_cli_s']:.1f} s with start-up)")
        batch = backend.get("batch")
        if batch:
            out.append("")
            out.append(f"  batch [{name}]")
            out.extend(f"  {line}" for line in batch_lines(batch))
    out.append("")
    out.append("  targets")
    for target in run["targets"]:
        out.append(f"  {target.verdict:<6}{target.name:<62}{_number(target.value) + target.unit:>12}  "
                   f"(target {target.wanted})")
    if run["errors"]:
        out.append("")
        out.append(f"  ERRORS ({len(run['errors'])}):")
        out.extend(f"  - {message}" for message in collapsed(run["errors"])[:30])
    out.append("")
    out.append(f"Wall time {run['wall_s']:.0f} s. Results: {run['json_path']} and {run['md_path']}")
    return "\n".join(out)


def batch_lines(batch: dict) -> list[str]:
    """The batch figures, one line each."""
    lines = []
    if "import" in batch:
        lines.append(f"roster import of {batch['import'].rows:,} children (the CLI command, in-process): "
                     f"{batch['import'].seconds:.2f} s")
    if "seed" in batch:
        seed = batch["seed"]
        lines.append(f"seeded {seed['members']:,} members and {seed['entries']:,} chained ledger entries in "
                     f"{seed['seconds']:.1f} s; ledger.verify of the chain: {seed['verify_s']:.2f} s")
    if "export" in batch:
        e = batch["export"]
        lines.append(f"export of {e.entries:,} entries: {e.seconds:.2f} s to the last byte, {e.megabytes:.1f} MB, "
                     f"worker peak RSS {e.peak_rss_mb:.0f} MB (idle before: {e.rss_before_mb:.0f} MB; "
                     f"{e.rss_method}); head hash matches the database: {e.head_matches}")
    if "records" in batch:
        r = batch["records"]
        kinds = ", ".join(f"{kind} p95 {_number(s.p95)} ms" for kind, s in r.by_kind.items())
        lines.append(f"records page at {r.members:,} members, {r.requests} requests one at a time: "
                     f"p50 {_number(r.stats.p50)}, p95 {_number(r.stats.p95)}, p99 {_number(r.stats.p99)} ms ({kinds})")
    return lines


def collapsed(messages: list[str]) -> list[str]:
    """Messages in first-seen order, a repeated one once with its count."""
    counts: dict[str, int] = {}
    for message in messages:
        counts[message] = counts.get(message, 0) + 1
    return [message if n == 1 else f"{message} (x{n})" for message, n in counts.items()]


def markdown(run: dict) -> str:
    """The run as Markdown: each figure with its target and verdict, the command and the machine."""
    m = run["machine"]
    out = [f"# Classgate benchmark, {run['started_at']}", "",
           f"Command: `{run['command']}` (wall time {run['wall_s']:.0f} s), commit `{m['commit']}`"
           + (f" with uncommitted changes to {', '.join(m['uncommitted_changes'])}"
              if m["uncommitted_changes"] else ""), "",
           "| machine | |", "|---|---|",
           f"| CPU | {m['cpu_model']} x {m['cpu_count']} |", f"| RAM | {m['ram_gib']} GiB |",
           f"| OS | {m['os']} |", f"| Python | {m['python']} |",
           *[f"| {name} | {version} |" for name, version in m["databases"].items()],
           "| libraries | " + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()) + " |",
           f"| load average before/after | {run['load_average'][0]} / {run['load_average'][1]} |",
           f"| server | {run['gunicorn_text']} |", f"| load | {run['load_text']} |", "",
           "## Targets", "", "| figure | value | target | result |", "|---|---:|---|---|"]
    out += [f"| {t.name} | {_number(t.value)}{t.unit} | {t.wanted} | {t.verdict} |" for t in run["targets"]]
    out += ["", "## Throughput", "",
            "| server | units/s | requests/s | p50 ms | p95 ms | p99 ms | errors | workers recycled | "
            "Classgate's req/s ÷ this |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    out += [f"| {r['label']} | {_number(r['units_per_s'])} | {_number(r['requests_per_s'])} | {_number(r['p50'])} | "
            f"{_number(r['p95'])} | {_number(r['p99'])} | {r['errors']} | {r['recycles']} | {r['ratio']} |"
            for r in run["throughput"]]
    out += ["", "CPU during each load run (warm-up included), average cores busy:", ""]
    out += [f"- {row['label']}: {row['cpu']}" for row in run["throughput"] if row["cpu"]]
    for name, backend in run["backends"].items():
        for key, title in JOURNEY_RUNS:
            journeys = backend.get(key)
            if not journeys:
                continue
            out += ["", f"## {title.capitalize()}, {name} (ms)", "", "| step | count | p50 | p95 | p99 | max |",
                    "|---|---:|---:|---:|---:|---:|"]
            for step in (*JOURNEY_STEPS, "all"):
                s = journeys.steps[step]
                out.append(f"| {step} | {s.count} | {_number(s.p50)} | {_number(s.p95)} | {_number(s.p99)} "
                           f"| {_number(s.max)} |")
        if backend.get("batch"):
            out += ["", f"## Batch, {name}", ""] + [f"- {line}" for line in batch_lines(backend["batch"])]
    if run["errors"]:
        out += ["", "## Errors", ""] + [f"- {message}" for message in collapsed(run["errors"])]
    return "\n".join(out) + "\n"


def write(run: dict, out_dir: Path) -> None:
    """Write latest.json and latest.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plain = {key: to_plain(value) for key, value in run.items() if key not in ("gunicorn_text", "load_text")}
    (out_dir / "latest.json").write_text(json.dumps(plain, indent=2, ensure_ascii=False) + "\n")
    (out_dir / "latest.md").write_text(markdown(run))
