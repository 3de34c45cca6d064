"""gunicorn settings for Classgate: `make serve`, or `gunicorn -c gunicorn.conf.py app:app`.

Every value can be overridden from the environment (GUNICORN_CMD_ARGS, or the variables below).
The app processes are stateless: run several behind a load balancer, with PostgreSQL as
DATABASE_URL and Redis as RATELIMIT_STORAGE_URI so every process shares the rate-limit counters.
"""

import gc
import multiprocessing
import os

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
# The usual rule for mostly-waiting web workers: two per core, plus one.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# One request at a time per process, gunicorn's own sync worker: a worker takes a connection from
# the listening socket only when it is free, so every waiting request is in one queue, served by
# whichever worker frees first. gthread workers each kept the connections they had accepted, and
# with connections coming and going the split between two workers wandered (16 clients were seen
# split 1/15 as often as 8/8), so a request's wait depended on which worker it had landed on: at
# 16 clients the minimal SQLModel app's p99 was 69-108 ms with gthread and 35-54 ms with sync
# workers (make bench; README, Serving and performance). A sync worker closes each connection
# after its response: put a buffering proxy or load balancer in front, as gunicorn's documentation
# asks, which keeps the phones' connections alive and holds slow uploads until they are complete.
# GUNICORN_THREADS above 1 gives gthread workers with that many threads each; on PostgreSQL, 2 x 4
# threads reached 0.35-0.41 of the minimal SQLModel app's requests per second and 2 x 1 0.46-0.60,
# as a request holding a row lock waits for the interpreter lock behind its siblings.
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 10
keepalive = 5  # gthread only: a sync worker closes each connection after its response
# Recycle workers now and then, so a slow leak can never grow without bound.
max_requests = 5000
max_requests_jitter = 500
# The master loads the app once and each worker is a fork of it, ready at once: a worker recycled
# after max_requests is back in milliseconds instead of the second it takes to import and build
# the app, during which its share of the requests waited (on a two-core server, a latency spike
# and a lost second of one worker in every recycle). The app opens no connection while loading;
# each worker still drops any pooled one it inherits (post_worker_init).
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") != "0"

accesslog = os.environ.get("ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
logger_class = "membership.serving.MaskedLogger"


def when_ready(_server) -> None:
    """In the master, with the app loaded: freeze it before the workers are forked (see below)."""
    gc.collect()
    gc.freeze()


def post_worker_init(worker) -> None:
    """Freeze what the worker holds once the app is loaded, so the collector never walks it again.

    Left in the collector's oldest generation, the tens of thousands of objects of the loaded app
    (SQLAlchemy's mappings, templates, the code itself) were all walked in every full collection,
    stopping the worker for 50-100 ms each time, several times a minute under load.

    A worker forked from a master that loaded the app also lets go of any database connection
    the master's pool held, without closing it: connections are never shared between processes.
    """
    engine = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("classgate_engine")
    if engine is not None:
        engine.dispose(close=False)
    gc.collect()
    gc.freeze()
