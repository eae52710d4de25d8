"""Where state lives: job, batch and outbox records, heartbeats, key and usage records,
camera event indexes in Redis (``jobs``, ``batches``, ``outbox``, ``workers``, ``apikeys``,
``usage``, ``camera_events``, ``task_stats``, ``fleet``) and files in the blob store
(``blobs``); ``purge`` removes a record with its indexes and files.

Each module owns its keys and its Lua; callers get decoded records. No HTTP, no Celery
task code and no model code here."""
