"""Column storage side by side: which columns of a document row stay in the row.

Copies the rows ``bench_filtered_correlated.py`` loaded (run it first; its
100,000 rows of 200-1,500-character texts) into five tables that differ
only in ``ALTER COLUMN ... SET STORAGE`` (and one ``toast_tuple_target``),
each with the metadata and full-text GIN indexes, then reports per table:
the heap size, how many rows have each column out of line
(``pg_column_toast_chunk_id``), the exact ranking of a filter's rows through
the GIN index at 1 %, 10 % and 30 % (median over 5 query vectors x 3
interleaved rounds), and hybrid's text arm on a word in most rows and on a
rare one (median of 5).

Usage::

    python benchmarks/bench_filtered_correlated.py          # loads the set
    python benchmarks/bench_column_storage.py

Results: printed (markdown), and ``benchmarks/results/column_storage_tables.md``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import vectorstore as vs

RESULTS = Path(__file__).resolve().parent / "results"
DATABASE = "bench_filtered_correlated"
COLUMNS = "id,external_id,text,content_hash,metadata,created_at,collection_id,embedding"
#: name -> (columns stored MAIN, toast_tuple_target or None)
VARIANTS: dict[str, tuple[tuple[str, ...], int | None]] = {
    "pgvector's default (vector EXTERNAL)": ((), None),
    "vector, tsvector MAIN": (("embedding", "text_search"), None),
    "vector, metadata, tsvector MAIN (vectorstore)": (
        ("embedding", "metadata", "text_search"),
        None,
    ),
    "the same, toast_tuple_target 4080": (("embedding", "metadata", "text_search"), 4080),
    "vector, metadata MAIN": (("embedding", "metadata"), None),
}
DEFAULT_STORAGE = {"embedding": "EXTERNAL", "metadata": "EXTENDED", "text_search": "EXTENDED"}


def _median_ms(cur: Any, sql: str, params: tuple[Any, ...]) -> float:
    started = time.perf_counter()
    cur.execute(sql, params)
    cur.fetchall()
    return (time.perf_counter() - started) * 1000


def main() -> int:
    base = vs.EmbeddedServer(Path(tempfile.gettempdir()) / f"vs-bench-correlated-{os.getuid()}")
    engine = vs.make_engine(base.start().set(database=DATABASE))
    raw = engine.raw_connection()
    raw.driver_connection.autocommit = True
    cur = raw.cursor()
    tables = {name: f"bench_storage_{i}" for i, name in enumerate(VARIANTS)}
    lines = ["| storage | insert s | heap MiB | rows with embedding / metadata / tsvector / "
             "text / content hash out of line |", "|---|---:|---:|---|"]  # fmt: skip
    for name, (main_columns, target) in VARIANTS.items():
        t = tables[name]
        cur.execute(f"DROP TABLE IF EXISTS {t}")
        cur.execute(f"CREATE TABLE {t} (LIKE vectorstore_documents "
                    "INCLUDING DEFAULTS INCLUDING GENERATED)")  # fmt: skip
        for column, default in DEFAULT_STORAGE.items():
            storage = "MAIN" if column in main_columns else default
            cur.execute(f"ALTER TABLE {t} ALTER COLUMN {column} SET STORAGE {storage}")
        if target:
            cur.execute(f"ALTER TABLE {t} SET (toast_tuple_target = {target})")
        started = time.perf_counter()
        cur.execute(f"INSERT INTO {t} ({COLUMNS}) SELECT {COLUMNS} FROM vectorstore_documents")
        inserted = time.perf_counter() - started
        cur.execute(f"CREATE INDEX ON {t} USING gin (metadata jsonb_path_ops)")
        cur.execute(f"CREATE INDEX ON {t} USING gin (text_search)")
        cur.execute(f"VACUUM ANALYZE {t}")
        out = ", ".join(f"count(*) FILTER (WHERE pg_column_toast_chunk_id({c}) IS NOT NULL)"
                        for c in ("embedding", "metadata", "text_search", "text",
                                  "content_hash"))  # fmt: skip
        cur.execute(f"SELECT {out}, pg_relation_size('{t}') / 1048576 FROM {t}")
        *counts, heap = cur.fetchone()
        lines.append(f"| {name} | {inserted:.1f} | {heap} | {' / '.join(map(str, counts))} |")
        print(lines[-1], flush=True)
    cur.execute("SELECT embedding::text FROM vectorstore_documents "
                "WHERE id IN (17, 5000, 33333, 77777, 91234)")  # fmt: skip
    queries = [r[0] for r in cur.fetchall()]
    last = tables["vector, metadata MAIN"]
    cur.execute(f"SELECT word, ndoc FROM ts_stat('SELECT text_search FROM {last}') "
                "ORDER BY ndoc DESC")  # fmt: skip
    stat = cur.fetchall()
    words = [stat[30], stat[min(3000, len(stat) - 1)]]
    timing: dict[str, dict[str, float]] = {name: {} for name in VARIANTS}
    for label, cat in (("exact 1 % ms", "c1"), ("exact 10 % ms", "c10"), ("exact 30 % ms", "c30")):
        found: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(3):
            for name in VARIANTS:
                for q in queries:
                    found[name].append(_median_ms(cur, (
                        f"SELECT id FROM (SELECT id, embedding <=> %s::vector AS d FROM "
                        f"{tables[name]} WHERE metadata @> %s::jsonb OFFSET 0) s "
                        "ORDER BY d LIMIT 10"), (q, json.dumps({"cat": cat}))))  # fmt: skip
        for name in VARIANTS:
            timing[name][label] = statistics.median(found[name])
    for word, ndoc in words:
        label = f"text arm '{word}' ({ndoc} rows) ms"
        found = {name: [] for name in VARIANTS}
        for _ in range(5):
            for name in VARIANTS:
                found[name].append(_median_ms(cur, (
                    f"SELECT id FROM {tables[name]}, plainto_tsquery('english', %s) q "
                    "WHERE text_search @@ q ORDER BY ts_rank_cd(text_search, q) DESC, id "
                    "LIMIT 40"), (word,)))  # fmt: skip
        for name in VARIANTS:
            timing[name][label] = statistics.median(found[name])
    heads = list(next(iter(timing.values())))
    lines += ["", "| storage | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for name, row in timing.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[h]:.1f}" for h in heads) + " |")
    for t in tables.values():
        cur.execute(f"DROP TABLE {t}")
    raw.close()
    engine.dispose()
    text_out = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "column_storage_tables.md").write_text(text_out)
    print(text_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
