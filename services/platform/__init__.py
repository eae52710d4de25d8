"""What every kadr process stands on, gateway, workers and ops alike: the Celery app and its
Redis transport (``celery_app``, ``broker``), the one task sender (``dispatch``), JSON logs
with the request id (``logs``) and the Prometheus metrics shared across processes
(``metrics``).

No records and no task code: stores live in ``services.store``, worker-side machinery in
``services.runtime``."""
