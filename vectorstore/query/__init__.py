"""The query wing: options -> filter -> plan (one decision) -> statement -> run.

``options`` validates a call, ``filters`` compiles the dictionary filter,
``selectivity`` estimates its size from a cached sample, ``plan`` decides the
strategy (once, for every path), ``statement`` builds the SELECT and its one
cache key, ``settings`` scopes pgvector's settings to the query, ``run``
executes it with the one exact fallback, and ``raw`` holds every SQLAlchemy
internal the fast path relies on.  ``hybrid``, ``mmr`` and ``diagnostics``
build on the same plan.  A function here takes a
:class:`~vectorstore._target.Target` and a vector, never the repository.
"""
