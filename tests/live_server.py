"""A real Classgate server (gunicorn in a subprocess) and HTTP clients that behave like parents."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import requests

from .conftest import Browser

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 20
STOP_SECONDS = 10
HIGH_LIMIT = "10000 per minute"


class ServerFailed(RuntimeError):
    """The server did not become healthy; the message carries its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is listening on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """gunicorn serving app:app against a given database, in its own process group."""

    def __init__(self, database_url: str, workdir: Path, workers: int = 4, threads: int = 4) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.workers = workers
        self.threads = threads
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"gunicorn-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def environment(self) -> dict[str, str]:
        """The server's settings: the test's database, no mail delivery, limits out of the way."""
        env = dict(os.environ)
        env.update(
            {
                "CLASSGATE_ENV": "testing",  # keeps the development secrets, same as the test app's
                "DATABASE_URL": self.database_url,
                "BASE_URL": self.url,
                "CLASSGATE_INSTANCE": str(self.workdir / "instance"),
                "OUTBOX_DIR": str(self.workdir / "outbox"),
                "MAIL_SEND_INLINE": "0",
                "MAIL_WRITE_FILES": "0",
                "SMTP_HOST": "",
                "CODE_LIMIT_PER_CLIENT": HIGH_LIMIT,
                "CODE_LIMIT_PER_GROUP": HIGH_LIMIT,
                "MAIL_LIMIT_PER_CLIENT": HIGH_LIMIT,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def start(self, attempts: int = 3) -> None:
        """Launch gunicorn and wait for /healthz; on a port taken meanwhile, try another one."""
        for attempt in range(attempts):
            try:
                self._start_once()
                return
            except ServerFailed as exc:
                # free_port() cannot reserve the port, so another process may grab it first.
                if "already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
                self.log_path = self.workdir / f"gunicorn-{self.port}.log"

    def command(self) -> list[str]:
        """The gunicorn command line."""
        return [
            sys.executable, "-m", "gunicorn",
            "--workers", str(self.workers),
            "--threads", str(self.threads),
            "--bind", f"127.0.0.1:{self.port}",
            # Clients open their connection with a GET and fire the racing POST on it later.
            "--keep-alive", "30",
            "--graceful-timeout", "5",
            "app:app",
        ]

    def _start_once(self) -> None:
        """Launch gunicorn and wait until /healthz answers 200; raise ServerFailed with its log if not."""
        command = self.command()
        with open(self.log_path, "wb") as log:
            # A new session makes the master and its workers one process group we can end together.
            self.process = subprocess.Popen(  # noqa: S603 - fixed command line
                command, cwd=ROOT, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"gunicorn exited with status {self.process.returncode}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass  # not listening yet
            time.sleep(0.1)
        self._fail(f"/healthz did not answer 200 within {STARTUP_SECONDS} s")

    def _fail(self, reason: str) -> None:
        """Stop what started, print the server's log and raise."""
        self.stop()
        log = self.log()
        print(f"--- gunicorn log ({self.log_path}) ---\n{log}", file=sys.stderr)
        raise ServerFailed(f"{reason}\n{log}")

    def errors(self) -> list[str]:
        """The lines of the server's log that report an error or a traceback (500s, locked databases)."""
        return [line for line in self.log().splitlines() if "[ERROR]" in line or line.startswith("Traceback")]

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """End the master and its workers: TERM to the group, KILL if they linger."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            self._signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self._signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_SECONDS)
        # Workers that outlived a crashed master are still in the group; end them too.
        self._signal_group(process.pid, signal.SIGKILL)

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        """Signal the process group the server was started in, if any of it is left."""
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass


class WebClient:
    """One parent's browser over real HTTP: its own cookies, reads forms and sends their CSRF token."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def url(self, path_or_url: str) -> str:
        """An absolute URL on the server for a path, a relative Location or an emailed link."""
        return urljoin(self.base_url + "/", path_or_url)

    def get(self, path: str, **kwargs) -> requests.Response:
        """GET a page, following redirects unless told otherwise."""
        return self.http.get(self.url(path), timeout=30, **kwargs)

    def form(self, path: str) -> dict[str, str]:
        """Open a page and return its hidden fields (CSRF token, document versions)."""
        page = self.get(path)
        fields = Browser.hidden_fields(page.text)
        assert "csrf_token" in fields, f"no form with a CSRF token on {path} ({page.status_code})"
        return fields

    def post(self, path: str, data: dict[str, str]) -> requests.Response:
        """POST a form without following the redirect, so the test sees where it points."""
        return self.http.post(self.url(path), data=data, allow_redirects=False, timeout=60)

    def submit(self, path: str, data: dict[str, str] | None = None) -> requests.Response:
        """Open the page, then post its form with the given fields."""
        return self.post(path, {**self.form(path), **(data or {})})

    def close(self) -> None:
        """Close the kept-alive connections."""
        self.http.close()


def text(response: requests.Response) -> str:
    """A response's text with tags and entities removed and whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", response.text))).strip()
