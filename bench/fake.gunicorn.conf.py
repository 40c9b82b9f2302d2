"""Gunicorn settings for the fake LINE platform in the benchmarks.

Given explicitly so that gunicorn does not pick up the bot's ./gunicorn.conf.py (its access log:
formatting a line per request costs the fake a tenth of its CPU, even when written to /dev/null).
"""

workers = 1
worker_class = "gthread"
threads = 16  # keep-alive connections from both bot workers and the load generator
keepalive = 5
