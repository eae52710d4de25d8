"""gunicorn settings for the gateway (env: GUNICORN_BIND, GUNICORN_WORKERS, GUNICORN_THREADS).

gthread: uploads and downloads are I/O bound; threads keep a slow client from holding a
whole process. max_requests with jitter recycles workers so a slow leak cannot grow
without bound, and the jitter keeps them from all restarting at once.
"""
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "200"))
# nginx is the only client; it sets X-Forwarded-* and X-Request-ID.
forwarded_allow_ips = "127.0.0.1"
accesslog = "-"
access_log_format = '{"ts":"%(t)s","service":"gateway","logger":"access","request_id":"%({x-request-id}i)s","method":"%(m)s","path":"%(U)s","status":%(s)s,"bytes":%(B)s,"seconds":%(L)s}'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


def child_exit(server, worker):
    # Multiprocess Prometheus: a dead worker's gauges must not linger.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)
