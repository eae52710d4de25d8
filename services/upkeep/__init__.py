"""Work no request asks for: orphaned jobs sent again (``reaper``, ``stranded``), batch items
fed into the queue window (``batch_feed``), retention by age and disk budget
(``retention``), callbacks delivered with their destination policy (``delivery``,
``callbacks``).

Each piece is a class with a ``tick`` (or a function) the process that hosts it calls
under its own Redis lock; which process hosts which is in docs/architecture.md."""
