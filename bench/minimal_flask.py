"""Baseline 1: the least a Flask app can do per request, served by the same gunicorn settings as Classgate.

`gunicorn -c gunicorn.conf.py bench.minimal_flask:app`
"""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> str:
    """A constant string."""
    return "Hello from Flask"
