"""gunicorn settings for the production ASGI stack (uvicorn workers, uvloop, httptools)."""

import os

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "tokenhub.worker.RelayWorker"
# Streams can stay open for minutes; the relay enforces its own upstream timeouts.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "600"))
# On SIGTERM, in this order and nested within graceful_timeout (after which gunicorn kills the worker):
# open streams get TOKENHUB_SHUTDOWN_STREAM_GRACE_SECONDS (15) to end, then are cut with an error
# event and settled for what was delivered; uvicorn cancels anything still running 5 s later; the
# lifespan waits up to TOKENHUB_SHUTDOWN_SETTLE_SECONDS (8) for settlements. 15 + 5 + 8 < 30.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
