"""A small, fast HTTP/1.1 client: one kept-alive connection and one cookie jar per simulated browser.

requests costs several times more CPU per request than http.client, and the load generator shares
the machine's two cores with the server it measures, so the clients speak http.client directly.
"""

from __future__ import annotations

import http.client
import re
import time
from dataclasses import dataclass
from html import unescape
from urllib.parse import urlencode, urlsplit

HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*>')
ATTR = re.compile(r'(name|value)="([^"]*)"')
# Errors meaning the server closed a kept-alive connection before reading the request: safe to resend once.
STALE_CONNECTION = (
    http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.CannotSendRequest,
)


@dataclass
class Reply:
    """One response, read to the end, and how long it took (ms, from sending to the last byte)."""

    status: int
    location: str
    body: bytes
    ms: float
    content_type: str = ""

    @property
    def path(self) -> str:
        """The path a redirect points to ('' when there is no Location)."""
        return urlsplit(self.location).path

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", errors="replace")

    def hidden_fields(self) -> dict[str, str]:
        """The hidden inputs of the page's forms (CSRF token, document versions)."""
        fields = {}
        for tag in HIDDEN.findall(self.text):
            attrs = dict(ATTR.findall(tag))
            if "name" in attrs:
                fields[attrs["name"]] = unescape(attrs.get("value", ""))
        return fields


class Browser:
    """A browser that keeps its connection open and its cookies, and never follows redirects."""

    def __init__(self, base_url: str, timeout: float = 60.0, requests_per_connection: int | None = None) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.reconnects = 0
        # Close the connection after this many requests (None: keep it as long as the server does).
        self.requests_per_connection = requests_per_connection
        self._connection: http.client.HTTPConnection | None = None
        self._sent = 0  # requests answered on the current connection

    def get(self, path: str) -> Reply:
        """GET a path (or an absolute URL on this server)."""
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str] | None = None) -> Reply:
        """POST a form, URL-encoded."""
        return self.request("POST", path, form or {})

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> Reply:
        """Send one request on the kept-alive connection and read the whole response.

        A connection the server closed while idle (keep-alive timeout, a worker recycled) is
        reopened and the request sent again once; the time of both tries counts.
        """
        parts = urlsplit(path)
        target = parts.path + (f"?{parts.query}" if parts.query else "") if parts.scheme else path
        body = urlencode(form).encode() if form is not None else None
        headers = {"Host": f"{self.host}:{self.port}", "Accept-Encoding": "identity"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        started = time.perf_counter()
        for attempt in range(2):
            connection = self._open()
            try:
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except STALE_CONNECTION:
                self.close()
                if attempt:
                    raise
                self.reconnects += 1
                continue
            break
        elapsed = (time.perf_counter() - started) * 1000
        self._remember_cookies(response.msg.get_all("Set-Cookie") or [])
        self._sent += 1
        if response.will_close or (self.requests_per_connection and self._sent >= self.requests_per_connection):
            self.close()
        return Reply(
            response.status, response.getheader("Location", ""), data, elapsed, response.getheader("Content-Type", "")
        )

    def stream(self, path: str, chunk: int = 64 * 1024) -> tuple[int, int, int, bytes, float]:
        """GET a path and read the body in chunks, keeping only its first chunk.

        Returns (status, bytes read, lines read, first chunk, ms to the last byte): what a
        download to /dev/null costs, without holding the file in the client's memory.
        """
        connection = self._open()
        headers = {"Host": f"{self.host}:{self.port}", "Accept-Encoding": "identity"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        first, size, lines = b"", 0, 0
        while True:
            block = response.read(chunk)
            if not block:
                break
            if not first:
                first = block
            size += len(block)
            lines += block.count(b"\n")
        elapsed = (time.perf_counter() - started) * 1000
        self.close()
        return response.status, size, lines, first, elapsed

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._sent = 0

    def _open(self) -> http.client.HTTPConnection:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._connection

    def _remember_cookies(self, headers: list[str]) -> None:
        """Keep each Set-Cookie's value; an emptied or expired cookie is dropped."""
        for header in headers:
            pair, _, attributes = header.partition(";")
            name, _, value = pair.strip().partition("=")
            lowered = attributes.lower()
            if not value or "max-age=0" in lowered or "1970" in lowered:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
