"""Where the machine's CPU went during a load run: the server, the clients, and everything else.

Client and server share the machine's cores, and other work on the machine shares them too;
these figures say how much each took, so a reader can tell a slow server from a busy machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuShare:
    """Average cores busy over an interval, by who used them."""

    seconds: float
    server_cores: float
    database_cores: float
    client_cores: float
    other_cores: float
    machine_cores: int

    def text(self) -> str:
        """'server 1.62, clients 0.21, … of 2 cores'."""
        database = f", PostgreSQL {self.database_cores:.2f}" if self.database_cores else ""
        return (f"server {self.server_cores:.2f}{database}, clients {self.client_cores:.2f}, "
                f"rest of the machine {self.other_cores:.2f} of {self.machine_cores} cores")


def machine_busy() -> float:
    """CPU-seconds the whole machine has been busy since boot (everything but idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    # guest time is already counted in user and nice
    return (sum(fields[:8]) - idle) / TICKS


def process_seconds(pids: list[int], reaped_children: bool = False) -> float:
    """CPU-seconds (user + system) used so far by these processes; a vanished one counts 0.

    With reaped_children, what their exited and reaped children used is added too: that is how a
    gunicorn master accounts for workers recycled during a run.
    """
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state is field 0, utime 11, stime 12, cutime 13, cstime 14.
        used = int(fields[11]) + int(fields[12])
        if reaped_children:
            used += int(fields[13]) + int(fields[14])
        total += used / TICKS
    return total


def parent_pid(pid: int) -> int | None:
    """The parent of a process, or None if it is gone (or not on this machine)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and brackets: the parent PID follows the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def child_pids(parent: int) -> list[int]:
    """The PIDs of a process's children now."""
    return sorted(int(entry.name) for entry in Path("/proc").iterdir()
                  if entry.name.isdigit() and parent_pid(int(entry.name)) == parent)


class CpuMeter:
    """Started before a load run and read after it."""

    def __init__(self, server_seconds: Callable[[], float]) -> None:
        self.server_seconds = server_seconds
        self.started = time.monotonic()
        self.busy = machine_busy()
        self.server = server_seconds()

    def share(self, client_seconds: float, database_seconds: float = 0.0) -> CpuShare:
        """The shares since the meter started; the clients' and database's CPU are measured by the caller."""
        seconds = max(time.monotonic() - self.started, 1e-9)
        server = self.server_seconds() - self.server
        busy = machine_busy() - self.busy
        other = max(0.0, busy - server - client_seconds - database_seconds)
        return CpuShare(seconds, server / seconds, database_seconds / seconds, client_seconds / seconds,
                        other / seconds, os.cpu_count() or 1)
