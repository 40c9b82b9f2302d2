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


def on_starting(server):  # type: ignore[no-untyped-def]
    """Wrong settings stop gunicorn at once with one line, before any worker fails on them."""
    if getattr(server.app, "app_uri", None) != "wsgi:app":
        return  # another WSGI app (see post_worker_init)
    from bot import metrics
    from bot.startup import check_config

    check_config()
    # /metrics adds up every worker's counters (and this host's dispatcher's) from per-process files
    # in PROMETHEUS_MULTIPROC_DIR (default instance/metrics); those of processes gone are dropped now.
    metrics.remove_files_of_dead_processes(metrics.enable_multiprocess())


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A worker exited: its live gauges leave the /metrics sum (its counters stay counted)."""
    if getattr(server.app, "app_uri", None) != "wsgi:app":
        return
    from bot import metrics

    metrics.mark_process_dead(worker.pid)


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Start the inbox threads in every worker, so events left by a crash are picked up."""
    app = worker.wsgi
    if "inbox" not in getattr(app, "extensions", {}):
        return  # another WSGI app: gunicorn reads ./gunicorn.conf.py for any app started here
    app.extensions["inbox"].start()
    # Build the FAQ index and load the model now rather than on the first resident's message, in a
    # thread: a large knowledge base takes longer to index than gunicorn's timeout gives a worker
    # to boot (it would be killed and started again, over and over). Residents' messages that come
    # meanwhile wait for the same build.
    import threading

    from bot.db import get_db
    from faq.service import INDEXES

    def warm_up() -> None:
        try:
            with get_db(app).read_session() as session:
                index, _ = INDEXES.get(session, app.config["MUNICIPALITY"])
            index.match("住民票の写しがほしい")  # loads the embedding model too (vectors may come from the disk cache)
        except Exception:  # noqa: BLE001 - e.g. not migrated yet: answer later, don't crash the worker
            worker.log.exception("FAQ index warm-up failed")

    threading.Thread(target=warm_up, name="faq-warm-up", daemon=True).start()
