"""Where state lives: job, batch and outbox records, heartbeats, key and usage records,
camera event indexes in Redis (``jobs``; ``batches`` over ``batch_records``, ``batch_window``
and ``batch_scripts``; ``outbox``, ``workers``, ``apikeys``, ``usage``, ``camera_events``,
``task_stats``, ``fleet``) and files in the blob store
(``blobs``); ``purge`` removes a record with its indexes and files; ``connection`` builds
the one Redis client every process uses.

Each module (the batch modules as one) owns its records and its Lua (the keys come from
``contracts.redis_keys``); callers get decoded records. No HTTP, no Celery
task code and no model code here."""
