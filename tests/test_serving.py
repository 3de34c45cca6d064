"""Serving with gunicorn.conf.py (`make serve`): it starts, answers, and its access log hides tokens."""

from __future__ import annotations

import gc
import runpy
import sys
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
import requests

from membership.serving import MaskedLogger

from .live_server import ROOT, LiveServer

TOKEN = "IjEyMyI.aGVsbG8.c2VjcmV0LXBhcnQ"


class ConfiguredServer(LiveServer):
    """gunicorn started exactly as `make serve` starts it: with gunicorn.conf.py."""

    def command(self) -> list[str]:
        """The project's gunicorn settings, on this server's port."""
        return [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:app"]

    def environment(self) -> dict[str, str]:
        """Two workers on this port; everything else from gunicorn.conf.py."""
        env = super().environment()
        env.update({"PORT": str(self.port), "WEB_CONCURRENCY": "2", "ACCESS_LOG": "-"})
        return env


def masked_logger() -> MaskedLogger:
    """The logger as gunicorn.conf.py sets it up, writing its error log to stderr."""
    return MaskedLogger(SimpleNamespace(
        errorlog="-", loglevel="info", accesslog=None, syslog=False, logconfig=None, logconfig_dict={},
        logconfig_json=None, capture_output=False, disable_redirect_access_to_syslog=False,
        access_log_format="", user=0, group=0, env={},
    ))


@pytest.fixture
def served(app, school, database_url, tmp_path) -> Iterator[ConfiguredServer]:
    """The configured server on a free port, stopped afterwards."""
    server = ConfiguredServer(database_url, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_configured_server_answers_and_its_access_log_hides_one_time_tokens(served):
    assert requests.get(f"{served.url}/healthz", timeout=10).json() == {"status": "ok", "database": "ok"}
    for path in (f"/invite/{TOKEN}", f"/me/sign-in/{TOKEN}", f"/join/verify/{TOKEN}", f"/join/reagree/{TOKEN}"):
        requests.get(f"{served.url}{path}", timeout=10)
    requests.get(f"{served.url}/join/year-2-ash", timeout=10)
    served.stop()  # flushes the log
    log = served.log()
    assert TOKEN not in log
    assert "/invite/*** " in log and "/me/sign-in/*** " in log
    assert '"GET /join/year-2-ash HTTP/1.1" 200' in log  # ordinary paths are logged as they are
    assert "Booting worker" in log and log.count("Booting worker") == 2


def test_the_configured_workers_serve_one_request_at_a_time_from_one_queue(served):
    """Sync workers: each answer closes its connection, so the next request queues for the first free worker."""
    with requests.Session() as phone:
        first = phone.get(f"{served.url}/join/year-2-ash", timeout=10)
        second = phone.get(f"{served.url}/join/year-2-ash", timeout=10)
    assert first.status_code == second.status_code == 200
    assert first.headers["Connection"] == "close"


def conf(monkeypatch, **env) -> dict:
    """gunicorn.conf.py's settings under the given environment."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_threads_asked_for_give_threaded_workers(monkeypatch):
    assert conf(monkeypatch)["worker_class"] == "sync"
    settings = conf(monkeypatch, GUNICORN_THREADS="4")
    assert (settings["worker_class"], settings["threads"]) == ("gthread", 4)


def test_a_worker_freezes_the_loaded_app_out_of_the_collectors_reach(monkeypatch):
    """A full collection must not walk the whole loaded app again and again (50-100 ms pauses under load)."""
    settings = conf(monkeypatch)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        settings["post_worker_init"](SimpleNamespace())
        assert gc.get_freeze_count() >= 1000
    finally:
        gc.unfreeze()


def test_the_master_loads_the_app_once_and_a_worker_keeps_none_of_its_connections(monkeypatch, app):
    """Workers are forks of a master that loaded the app; a pooled connection it held stays its own."""
    settings = conf(monkeypatch)
    assert settings["preload_app"] is True
    assert conf(monkeypatch, GUNICORN_PRELOAD="0")["preload_app"] is False
    engine = app.extensions["classgate_engine"]
    with engine.connect() as connection:  # the master's pool now holds one connection
        inherited = connection.connection.dbapi_connection
    assert engine.pool.checkedin() == 1
    try:
        settings["post_worker_init"](SimpleNamespace(wsgi=app))
        assert engine.pool.checkedin() == 0  # the worker's pool starts empty
        with engine.connect() as connection:
            assert connection.connection.dbapi_connection is not inherited
    finally:
        gc.unfreeze()
    inherited.close()


def test_the_access_log_masks_tokens_in_every_field():
    logger = masked_logger()
    environ = {
        "REQUEST_METHOD": "POST", "RAW_URI": f"/invite/{TOKEN}", "PATH_INFO": f"/invite/{TOKEN}",
        "SERVER_PROTOCOL": "HTTP/1.1", "QUERY_STRING": "", "HTTP_REFERER": f"https://x.example/me/sign-in/{TOKEN}",
    }
    response = SimpleNamespace(status="303 See Other", sent=0, headers=[("Location", "https://chat.example/")])
    request = SimpleNamespace(headers=[("REFERER", f"https://x.example/me/sign-in/{TOKEN}")])
    atoms = logger.atoms(response, request, environ, timedelta(milliseconds=3))
    assert atoms["r"] == "POST /invite/*** HTTP/1.1"
    assert atoms["U"] == "/invite/***"
    assert TOKEN not in repr(atoms)


def test_the_error_log_masks_tokens_too(capsys):
    """gunicorn's 'Error handling request GET /invite/<token>' line must not carry the token."""
    logger = masked_logger()
    logger.error("Error handling request %s", f"/join/verify/{TOKEN}")
    logged = capsys.readouterr().err
    assert "Error handling request /join/verify/***" in logged
    assert TOKEN not in logged
