"""Starting and stopping gunicorn with the project's gunicorn.conf.py, each server in its own process group."""

from __future__ import annotations

import http.client
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from membership import mask_tokens

from .cpu import child_pids, process_seconds

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "gunicorn.conf.py"
STARTUP_SECONDS = 30
STOP_SECONDS = 10
HIGH_LIMIT = "1000000 per minute"


class ServerFailed(RuntimeError):
    """gunicorn did not become healthy; the message carries the end of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def classgate_env(database_url: str, workdir: Path, base_url: str = "http://127.0.0.1:5000") -> dict[str, str]:
    """Classgate's environment here: its own database and instance folder, no mail, limits out of the way."""
    env = dict(os.environ)
    env.update({
        "CLASSGATE_ENV": "testing",  # keeps the development secrets
        "DATABASE_URL": database_url,
        "BASE_URL": base_url,
        "CLASSGATE_INSTANCE": str(workdir / "instance"),
        "OUTBOX_DIR": str(workdir / "outbox"),
        "MAIL_SEND_INLINE": "0",
        "MAIL_WRITE_FILES": "0",
        "SMTP_HOST": "",
        "CODE_LIMIT_PER_CLIENT": HIGH_LIMIT,
        "CODE_LIMIT_PER_GROUP": HIGH_LIMIT,
        "MAIL_LIMIT_PER_CLIENT": HIGH_LIMIT,
        "PYTHONUNBUFFERED": "1",
    })
    return env


def gunicorn_settings(workers: int) -> dict[str, object]:
    """The settings gunicorn.conf.py gives with WEB_CONCURRENCY=workers (threads as configured there)."""
    saved = os.environ.get("WEB_CONCURRENCY")
    os.environ["WEB_CONCURRENCY"] = str(workers)
    try:
        conf = runpy.run_path(str(CONF))
    finally:
        if saved is None:
            os.environ.pop("WEB_CONCURRENCY", None)
        else:
            os.environ["WEB_CONCURRENCY"] = saved
    names = ("workers", "threads", "worker_class", "keepalive", "timeout", "max_requests", "max_requests_jitter",
             "preload_app", "accesslog", "loglevel")
    return {name: conf.get(name) for name in names}


class Server:
    """`gunicorn -c gunicorn.conf.py APP` in a new session, so the master and its workers stop together."""

    def __init__(self, name: str, app: str, env: dict[str, str], workdir: Path, workers: int = 2,
                 health_path: str = "/healthz") -> None:
        self.name = name
        self.app = app
        self.workers = workers
        self.health_path = health_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "WEB_CONCURRENCY": str(workers), "BIND": f"127.0.0.1:{self.port}",
                    "PYTHONUNBUFFERED": "1"}
        if "BASE_URL" in env:
            self.env["BASE_URL"] = self.url
        self.log_path = workdir / f"gunicorn-{name}-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Launch gunicorn and wait until the health path answers 200; raise ServerFailed if it does not."""
        command = [sys.executable, "-m", "gunicorn", "-c", str(CONF), self.app]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    self._fail(f"gunicorn exited with status {self.process.returncode}")
                if self._healthy() and len(self.worker_pids()) >= self.workers:
                    return
                time.sleep(0.1)
            self._fail(f"{self.health_path} did not answer 200 within {STARTUP_SECONDS} s")
        except BaseException:
            # Interrupted while starting (Ctrl-C, TERM): `with` would not call __exit__, so stop here.
            self.stop()
            raise

    def _healthy(self) -> bool:
        """True once the server answers its health path with 200."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", self.health_path)
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def _fail(self, reason: str) -> None:
        self.stop()
        raise ServerFailed(f"{self.name}: {reason}\n--- {self.log_path} ---\n{self.log()[-4000:]}")

    def worker_pids(self) -> list[int]:
        """The PIDs of the master's worker processes now."""
        if self.process is None:
            return []
        return child_pids(self.process.pid)

    def cpu_seconds(self) -> float:
        """CPU-seconds used so far by the master, its live workers and the workers it has recycled."""
        if self.process is None:
            return 0.0
        return process_seconds([self.process.pid], reaped_children=True) + process_seconds(self.worker_pids())

    def log(self) -> str:
        """Everything gunicorn wrote so far (its access log included)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def errors(self) -> list[str]:
        """Log lines that report an error or a traceback (a 500, a locked database, a worker killed).

        gunicorn's own error lines name the raw request path, one-time tokens included: masked here.
        """
        return [mask_tokens(line) for line in self.log().splitlines()
                if "[ERROR]" in line or "[CRITICAL]" in line or line.startswith("Traceback") or '" 50' in line
                or "Error:" in line]

    def restarts(self) -> int:
        """How many times a worker was recycled after max_requests (gunicorn.conf.py) during the run."""
        return self.log().count("Autorestarting worker")

    def stop(self) -> None:
        """TERM the whole process group; KILL what lingers (workers that outlived their master too)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_SECONDS)
        _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group if any of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def flask_cli(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run `flask --app app ARGS…` with this environment; return its output, raising with it on failure."""
    command = [sys.executable, "-m", "flask", "--app", "app", *args]
    done = subprocess.run(  # noqa: S603 - a fixed command line
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def alembic_upgrade(env: dict[str, str]) -> None:
    """`alembic upgrade head` on the environment's DATABASE_URL."""
    done = subprocess.run(  # noqa: S603 - a fixed command line
        [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"alembic upgrade head failed:\n{done.stdout}\n{done.stderr}")
