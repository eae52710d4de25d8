"""What the gateway, the workers and the ops processes must agree on: settings read from
``KADR_*`` (``settings``), task names, queues and wire payloads (``tasks``), API and task
parameter models (``schemas``, ``segment_options``), every blob key (``blob_keys``) and
Redis key (``redis_keys``), what a photo may cost (``photo_cost``) and how webhooks are
signed (``camera_auth``).

Pure declarations and arithmetic: no Redis, Celery, Flask or torch calls here. A module
that talks to a store or a broker belongs in ``store`` or ``runtime``."""
