"""The worker side of a kadr process: model weights and the lazy registry (``weights``,
``registry``, ``device``), one job's run from claim to end (``execution``), a pool process's
lifetime and the upkeep it hosts (``worker_process``), and a worker's own ``/metrics``
(``worker_metrics``).

Not here: what a task computes (``services.<svc>``), periodic upkeep itself
(``services.upkeep``), or anything the gateway needs (it never imports this package)."""
