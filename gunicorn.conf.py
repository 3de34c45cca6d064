"""gunicorn settings for Classgate: `make serve`, or `gunicorn -c gunicorn.conf.py app:app`.

Every value can be overridden from the environment (GUNICORN_CMD_ARGS, or the variables below).
The app processes are stateless: run several behind a load balancer, with PostgreSQL as
DATABASE_URL and Redis as RATELIMIT_STORAGE_URI so every process shares the rate-limit counters.
"""

import multiprocessing
import os

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
# The usual rule for mostly-waiting web workers: two per core, plus one.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# One thread per process: concurrency comes from the processes. With several threads, a request
# holding a row lock (the ledger's head, say) waits for the interpreter lock behind its siblings at
# every round trip to the database, and everyone queued on that row waits with it: on PostgreSQL,
# 2 workers x 4 threads reached 0.35-0.41 of the minimal SQLModel app's requests per second, 2 x 1
# reached 0.46-0.60 (make bench; README, Serving and performance).
# gthread still keeps idle kept-alive connections without tying the thread up; put a buffering
# proxy or load balancer in front for slow clients, as for any gunicorn deployment.
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 10
keepalive = 5
# Recycle workers now and then, so a slow leak can never grow without bound.
max_requests = 5000
max_requests_jitter = 500
# Each worker builds its own app (and database pool) after the fork: connections are never shared.
preload_app = False

accesslog = os.environ.get("ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
logger_class = "membership.serving.MaskedLogger"
