"""COPY sends each chunk on to the server before it waits for the next one.

``write_copy`` hands chunks to the driver as the producer makes them; a slow
producer (an embedder working on the next chunk) must not leave a finished
chunk sitting in the client's buffer.  psycopg 3 by default flushes libpq's
buffer only every 1 MiB: a chunk below that stayed unsent while the producer
was busy - which made a fault test that waits for the server to receive data
from a stalled producer hang now and then.  Here the producer stalls after one
chunk until the server reports every byte of it received
(``pg_stat_progress_copy.bytes_processed`` of this backend).  psycopg 3 only:
psycopg2's ``copy_expert`` hands a chunk to libpq when it reads the next one
from the producer, which a stalled producer holds up the same way for one
chunk (out of vectorstore's hands; the fault tests allow for it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import url_for
from vectorstore.write.copy import write_copy

# Bounded so that a regression fails instead of hanging; it ends as soon as the bytes arrive.
_DEADLINE_S = 30.0
ROWS = 5_000  # ~500 KB: above any socket buffer, below psycopg's 1 MiB flush threshold


def test_a_chunk_reaches_the_server_while_the_producer_is_busy(postgresql: Any) -> None:
    url = url_for(postgresql.info.dbname, "psycopg")
    engine = create_engine(url, poolclass=NullPool)
    observer = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    chunk = b"".join(b"%06d %s\n" % (i, b"x" * 92) for i in range(ROWS))
    received: list[int] = []
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TEMP TABLE copy_flush (line text)")
            pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

            def stalled() -> Iterator[bytes]:
                yield chunk
                # Stall (as an embedder would) until the server has all of the chunk.
                tick = threading.Event()
                with observer.connect() as watch:
                    for _ in range(int(_DEADLINE_S / 0.01)):
                        got = watch.execute(
                            text(
                                "SELECT coalesce(max(bytes_processed), 0) "
                                "FROM pg_stat_progress_copy WHERE pid = :pid"
                            ),
                            {"pid": pid},
                        ).scalar_one()
                        received.append(int(got))
                        if got >= len(chunk):
                            return
                        tick.wait(0.01)

            raw = conn.connection.dbapi_connection
            write_copy(raw, "COPY copy_flush (line) FROM STDIN", stalled())
            assert conn.exec_driver_sql("SELECT count(*) FROM copy_flush").scalar_one() == ROWS
        assert received
        assert received[-1] >= len(chunk), f"the server received {received[-1]} bytes"
    finally:
        engine.dispose()
        observer.dispose()


