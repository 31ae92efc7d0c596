"""The main job on the embedded default: index the stdlib's documentation, then ask it.

Run with ``python -m vectorstore.demo`` (or ``make demo``).  It starts (or
reuses) the embedded PostgreSQL, migrates it, and stores the documentation of
Python's own standard library (about 2,100 texts: module, class and function
docstrings and pydoc's topics; see :mod:`vectorstore._stdlib_corpus`) embedded
by the real all-MiniLM-L6-v2 model, with a progress bar.  Each text carries
metadata (``module``, ``kind``, ``name``), and a relational table of the
modules (``demo_stdlib_modules``: package or not, pure Python or not, lines of
source) sits beside the documents.  It then answers a few questions with plain
nearest-neighbour search, a metadata filter, hybrid (full text + vector)
search, and a join against the module table, printing module, kind and score.

Design decisions:

* **Re-runs embed nothing that is stored.**  The texts go through
  :func:`vectorstore.ingest`, which skips every text whose content hash the
  collection already stores, so the second run goes straight to the answers.
  Each text has a stable external id (``function:json.dumps``): a docstring
  that changed (a new Python version) is re-embedded and replaces the old row.
* **The app's own table is the app's.**  The module table is created with the
  demo's own declarative base (``create_all``), as an app would with its own
  migrations; vectorstore's schema comes from :func:`vectorstore.migrate`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import Boolean, Engine, Integer, Text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ._stdlib_corpus import ModuleInfo, extract_corpus
from .embedders import Embedder
from .models import Document
from .repository import DocumentRepository

__all__ = [
    "QUESTIONS",
    "DemoBase",
    "DemoReport",
    "StdlibModule",
    "answer",
    "ensure_index",
    "load",
    "main",
]

COLLECTION = "stdlib-docs"
# Texts read, embedded and written per pipeline step: large enough for efficient
# batches, small enough that the progress bar moves every few seconds on a CPU.
CHUNK = 128


class DemoBase(DeclarativeBase):
    """The demo app's own declarative base (its tables are not vectorstore's)."""


class StdlibModule(DemoBase):
    """One importable stdlib module: the relational side the documents join to."""

    __tablename__ = "demo_stdlib_modules"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    top_level: Mapped[str] = mapped_column(Text)
    is_package: Mapped[bool] = mapped_column(Boolean)
    pure_python: Mapped[bool] = mapped_column(Boolean)
    source_lines: Mapped[int] = mapped_column(Integer)
    public_names: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True)
class DemoReport:
    """What :func:`load` did."""

    modules: int
    texts: int
    embedded: int
    already_stored: int
    elapsed_s: float


# (question, options for nearest, what it shows)
QUESTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("How do I parse a JSON string into a Python object?", {}, "nearest"),
    ("run a shell command and capture its output", {"filter": {"kind": "function"}},
     "nearest, filter kind=function"),
    ("create a temporary directory", {"hybrid": True},
     "hybrid: full text + vector, ranked by both"),
    ("what happens when an exception is raised inside a with block", {"filter": {"kind": "topic"}},
     "nearest, filter kind=topic"),
    ("send an email message over SMTP", {"join": True}, "nearest joined to the module table, "
     "pure-Python modules over 1000 lines"),
]  # fmt: skip


def _save_modules(session: Session, modules: Sequence[ModuleInfo]) -> None:
    rows = [
        {
            "name": m.name,
            "top_level": m.top_level,
            "is_package": m.is_package,
            "pure_python": m.pure_python,
            "source_lines": m.source_lines,
            "public_names": m.public_names,
        }
        for m in modules
    ]
    if not rows:
        return
    stmt = pg_insert(StdlibModule).values(rows)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={c: stmt.excluded[c] for c in rows[0] if c != "name"},
        )
    )


def load(
    engine: Engine,
    embedder: Embedder,
    *,
    limit: int | None = None,
    collection: str = COLLECTION,
    progress: bool = True,
    out: IO[str] | None = None,
) -> DemoReport:
    """Store the stdlib corpus in ``collection``, embedding only what is not stored yet.

    The texts go through :func:`vectorstore.ingest`, which skips texts whose
    content hash the collection already stores (so a re-run embeds nothing) and
    overlaps embedding with writing.

    Args:
        engine: where to store (vectorstore's schema must be migrated).
        embedder: the model (the demo uses all-MiniLM-L6-v2).
        limit: at most this many texts (all of them by default).
        collection: the collection name.
        progress: show a progress bar on stderr while embedding.
        out: where to print the summary (default stdout).
    """
    from .repository import ingest

    started = time.perf_counter()
    out = out or sys.stdout
    modules, texts = extract_corpus(limit=limit)
    DemoBase.metadata.create_all(engine)
    with Session(engine) as session:
        _save_modules(session, modules)
        session.commit()
    print(
        f"corpus: {len(texts)} texts from {len(modules)} modules; embedding new ones "
        f"with {embedder.model_name}",
        file=out,
        flush=True,
    )
    repo: DocumentRepository[Document] = DocumentRepository.standalone(
        engine, collection=collection, embedder=embedder
    )
    records = [
        {"text": t.text, "metadata": t.metadata, "external_id": t.external_id} for t in texts
    ]
    # A changed docstring keeps its external id: "update" re-embeds and replaces it.
    result = ingest(
        records, repository=repo, on_conflict="update", chunk_rows=CHUNK, progress=progress
    )
    return DemoReport(
        modules=len(modules),
        texts=len(texts),
        embedded=result.embedded,
        already_stored=result.known,
        elapsed_s=time.perf_counter() - started,
    )


def ensure_index(
    engine: Engine, *, collection: str = COLLECTION, out: IO[str] | None = None
) -> str:
    """The collection's own HNSW index (built once, on the collection's rows only); its name.

    The table-wide HNSW index serves a collection that is most of the table.
    On a database that holds other collections too (the persistent default
    one), the demo's collection is a filter on that index, and the planner
    ranks its rows exactly; a per-collection (partial) index keeps the demo on
    HNSW wherever it runs.
    """
    from .schema.indexes import IndexSpec

    out = out or sys.stdout
    repo: DocumentRepository[Document]
    with DocumentRepository.standalone(engine, collection=collection, create=False) as repo:
        own = [ix for ix in repo.list_indexes()
               if ix.collection_id == repo.collection.id and ix.method == "hnsw"]  # fmt: skip
        if own:
            return own[0].name
        started = time.perf_counter()
        name = repo.create_index(IndexSpec(method="hnsw", per_collection=True))
        print(f"index: built HNSW index {name} on the collection's {repo.count()} rows "
              f"({time.perf_counter() - started:.1f}s)", file=out, flush=True)  # fmt: skip
        return name


def _how_it_ran(strategy: str, reason: str = "") -> str:
    """The strategy in words: which index served the query, or why none did."""
    if strategy == "index":
        return "HNSW index scan"
    if strategy == "iterative":
        return "HNSW iterative index scan (keeps scanning until k rows pass the filter)"
    if strategy == "exact":
        return f"exact ranking, {reason}" if reason else "exact ranking"
    return strategy


def answer(
    engine: Engine,
    embedder: Embedder,
    *,
    k: int = 3,
    collection: str = COLLECTION,
    out: IO[str] | None = None,
) -> list[list[tuple[str, str, str, float]]]:
    """Ask :data:`QUESTIONS`; print and return ``(module, kind, name, score)`` per hit."""
    out = out or sys.stdout
    answers = []
    with Session(engine) as session:
        repo: DocumentRepository[Document] = DocumentRepository(
            session, collection=collection, embedder=embedder, create=False
        )
        for question, options, how in QUESTIONS:
            kwargs = dict(options)
            if kwargs.pop("join", False):
                kwargs.update(
                    join=StdlibModule,
                    join_on=StdlibModule.name == Document.metadata_["module"].astext,
                    filter=[StdlibModule.pure_python.is_(True), StdlibModule.source_lines > 1000],
                )
            hybrid = kwargs.pop("hybrid", False)
            hits = repo.hybrid(question, k=k) if hybrid else repo.nearest(question, k=k, **kwargs)
            if hybrid:  # its reason names the vector arm's strategy: "RRF of ... and index ..."
                arm = hits.reason.rsplit(" and ", 1)[-1].split(" ")[0]
                shown = f"vector arm: {_how_it_ran(arm)}"
            else:
                shown = f"strategy: {_how_it_ran(hits.strategy, hits.reason)}"
            print(f"\n{question!r}  [{how}; {shown}]", file=out)
            if hybrid:
                print("  rank  (vector rank, full-text rank; '-': not among that arm's best)",
                      file=out)  # fmt: skip
            rows = []
            for place, hit in enumerate(hits, start=1):
                meta = hit.document.metadata_
                row = (str(meta["module"]), str(meta["kind"]), str(meta["name"]), hit.score)
                rows.append(row)
                extra = ""
                if isinstance(hit.extra, StdlibModule):
                    extra = f"  ({hit.extra.source_lines} lines)"
                if hybrid and isinstance(hit.extra, dict):
                    ranks = [hit.extra.get("vector_rank"), hit.extra.get("text_rank")]
                    vector, text = ("-" if r is None else f"#{r}" for r in ranks)
                    lead = f"  #{place}  (vector {vector:>3}, text {text:>3})"
                else:
                    lead = f"  {hit.score:6.3f}"
                print(f"{lead}  {row[0]:<24} {row[1]:<9} {row[2]}{extra}", file=out)
            answers.append(rows)
        session.rollback()
    return answers


def _embedder(model: str, device: str | None) -> Embedder:
    from .embedders import embedder_for

    return embedder_for(model, device=device)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vectorstore.demo``: load (or reuse) the corpus, then answer."""
    parser = argparse.ArgumentParser(
        prog="python -m vectorstore.demo",
        description="Index the standard library's documentation and search it.",
    )
    parser.add_argument("--database-url", default=None, help="default: the embedded server")
    parser.add_argument("--limit", type=int, default=None, help="at most this many texts")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: best)")
    parser.add_argument(
        "--model", default="sentence-transformers/all-MiniLM-L6-v2", help="embedding model"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    import vectorstore as vs

    try:
        if args.database_url is None and not os.environ.get("VECTORSTORE_DATABASE_URL"):
            print("starting the embedded PostgreSQL (reused if already running)...", flush=True)
        url = vs.resolve_url(args.database_url)
        vs.migrate(url)
        engine = vs.make_engine(url)
        try:
            embedder = _embedder(args.model, args.device)
            report = load(engine, embedder, limit=args.limit, progress=not args.no_progress)
            print(
                f"stored: embedded {report.embedded} texts, {report.already_stored} were "
                f"already stored ({report.elapsed_s:.1f}s)",
                flush=True,
            )
            name = ensure_index(engine)
            print(f"searching with HNSW index {name} (scores: cosine similarity, 1 = same "
                  "direction)", flush=True)  # fmt: skip
            answer(engine, embedder)
        finally:
            engine.dispose()
    except vs.VectorStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
