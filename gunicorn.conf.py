"""Gunicorn settings for production and `make run` (override with GUNICORN_* env or CLI flags)."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
# Access log lines carry no bodies; the query string of /callback is empty.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Start the inbox threads in every worker, so events left by a crash are picked up."""
    worker.wsgi.extensions["inbox"].start()
