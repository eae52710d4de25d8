"""gunicorn settings for the gateway (env: GUNICORN_BIND, GUNICORN_WORKERS,
GUNICORN_WORKER_CLASS, GUNICORN_WORKER_CONNECTIONS, GUNICORN_THREADS).

gevent by default: an open progress stream or a ``?wait=`` poll is a greenlet waiting
on the process's one Redis subscription (gateway/fanout.py), so a crowd of them costs
~40 KiB each and no thread. Measured against a thread per connection and against a
split (threads for the API, gevent for held connections only) in bench/crowd.py: see
the README. ``GUNICORN_WORKER_CLASS=gthread`` (with ``GUNICORN_THREADS``) still works
where gevent cannot run, at a thread per held connection. max_requests with jitter
recycles workers so a slow leak cannot grow without bound, and the jitter keeps them
from all restarting at once; held connections end cleanly as a worker drains.
"""

import os
import shutil
import tempfile
from typing import Any  # the hooks' server and worker: gunicorn ships no types

# Several workers, one /metrics: prometheus_client's multiprocess mode needs a shared
# directory, set before any worker imports the client (this file runs in the master).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="kadr-gateway-metrics-")
    _own_metrics_dir = True
else:
    _own_metrics_dir = False

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# gevent: simultaneous connections per worker (held streams and long polls included).
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "5000"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# gunicorn's largest (its default is 4094): nginx passes request lines up to 8,000 bytes,
# and anything longer is refused there with JSON, not here with an HTML page.
limit_request_line = 8190
# An evented worker holds many connections, and each long poll asked again counts as a
# request: recycle it ten times less often (its held streams end cleanly when it does).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000" if worker_class == "gthread" else "20000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "200"))
# nginx is the only client; it sets X-Forwarded-* and X-Request-ID. In compose nginx is
# another container: FORWARDED_ALLOW_IPS names it (the gateway's port is not published).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn 23+ opens a control socket at one per-user path; several gateways on one
# host (tests, make up) would fight over it, and nothing here uses it.
control_socket_disable = True
accesslog = "-"
access_log_format = '{"ts":"%(t)s","service":"gateway","logger":"access","request_id":"%({x-request-id}i)s","method":"%(m)s","path":"%(U)s","status":%(s)s,"bytes":%(B)s,"seconds":%(L)s}'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# gunicorn's own lines as JSON too, like every other kadr log line.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
            "static_fields": {"service": "gateway"},
        },
        "raw": {"format": "%(message)s"},
    },
    "handlers": {
        "error": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
        "access": {"class": "logging.StreamHandler", "formatter": "raw", "stream": "ext://sys.stdout"},
    },
    "root": {"level": "INFO", "handlers": ["error"]},
    "loggers": {
        "gunicorn.error": {"handlers": ["error"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}


def post_worker_init(worker: Any) -> None:
    # Held streams and long polls end on their own when this worker starts to drain.
    from gateway import draining

    draining.bind(worker)


def child_exit(server: Any, worker: Any) -> None:
    # A dead worker's live gauges must not linger in the aggregate.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]  # unannotated upstream


def on_exit(server: Any) -> None:
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
