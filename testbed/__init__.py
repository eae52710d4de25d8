"""What the tests and the benchmarks both stand on, kept out of ``tests/`` so a benchmark
never imports the test suite: real processes on free ports (redis-server, Celery workers,
gunicorn, nginx, the ops exporter: :mod:`testbed.stack`), randomly initialised weights in
the official file formats (:mod:`testbed.weights`), and inputs made on the spot: photos
(:mod:`testbed.photos`), videos (:mod:`testbed.synthetic_video`), licence plates
(:mod:`testbed.plates`) and an MJPEG camera (:mod:`testbed.mjpeg_server`).

Not part of the installed kadr package: it runs from a checkout only. Fixtures that only
tests use, and pytest's own fixtures, stay in ``tests/``."""
