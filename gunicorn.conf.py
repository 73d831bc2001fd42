"""gunicorn settings for the production ASGI stack (uvicorn workers, uvloop, httptools)."""

import os
import shutil
import tempfile

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


# Prometheus multiprocess mode (tokenhub/metrics.py): each worker writes its metrics to files in a
# directory of this master's own (a fresh one under PROMETHEUS_MULTIPROC_DIR when it is set, whose
# other files are left alone; two masters on one host never mix), and a dead worker's are marked so.
def _metrics_directory(parent: str | None) -> str:
    if not parent:
        return tempfile.mkdtemp(prefix="tokenhub-metrics-")
    os.makedirs(parent, exist_ok=True)
    for name in os.listdir(parent):  # directories of masters that are gone
        pid = name.removeprefix("tokenhub-master-").split("-", 1)[0]
        if name.startswith("tokenhub-master-") and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"tokenhub-master-{os.getpid()}-", dir=parent)


os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_directory(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# gunicorn's own lines in the site's format (LOG_FORMAT=json: one JSON object a line).
if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "tokenhub.lib.logs.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }
