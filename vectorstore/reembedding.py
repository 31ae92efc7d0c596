"""Switch a collection to another embedding model online: :func:`reembed`.

``reembed(bind, "products", new_embedder, target="products_v2")`` builds a
new collection from the old one's texts, metadata and external ids, embedded
by ``new_embedder`` (another model, possibly another dimension in another
``DocumentMixin`` table), builds its ANN index, verifies it, and switches the
alias ``products`` to it in one transaction.  Readers and writers go on
working all along; :func:`vectorstore.rollback_alias` switches back.

How it works, and why:

* **A diff, not a cursor.**  Each round compares the two collections by a
  key of (external id, content hash, metadata, occurrence): the source rows
  the target lacks are copied, the target rows the source no longer has are
  deleted (a text changed, a row deleted meanwhile).  The same diff makes a
  run *resumable* (after an interruption only the missing rows are embedded
  again: by content hash, exactly, duplicates included) and carries over
  what was written to the source while the run went on.
* **The ingest pipeline, in committed steps.**  The rows to copy are read by
  id (a private reader: ``_read_records``, batches of ids, its own
  connection), embedded in a worker thread overlapped with the binary COPY of
  the previous chunk (:func:`vectorstore.write.ingest.ingest`), one
  transaction per ``commit_rows`` rows, so an interruption loses at most one
  step.  Big-load mode is off: the document table may be shared with live
  collections.
* **Rounds until the rest is small**, then the index (if no ANN index serves
  the new collection yet: a per-collection HNSW, built ``CONCURRENTLY``), a
  sample check (each sampled row's own text, embedded by the new model, must
  find that row's text among its nearest neighbours), then **the switch
  transaction**: the alias row is locked (writes through the alias hold it
  while they run, see :mod:`vectorstore.schema.aliases`: the lock waits for
  them and holds back new ones), the source collection's row too (direct
  inserts wait), the last diff is applied, the row counts must agree
  exactly, and the alias is switched.  Commit: every reader moves at once.
  Writes that came during the lock wait and then go to the new collection.

Writes during the run must go through the alias to be carried over to the
very end; a write naming the old collection directly is carried over only if
it commits before the switch.  Run it with an Engine or a URL: it commits
step by step (a caller's Session would be committed behind its back).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import URL, Engine, Table, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.orm import Session, sessionmaker

from ._identifiers import check_collection_name, check_model_identifiers
from ._progress import Progress
from ._target import CollectionSpec, Sessions, Target
from .config import make_engine
from .embedders import Embedder
from .errors import (
    CollectionNotFoundError,
    ConfigurationError,
    DimensionMismatchError,
    ValidationError,
    VerificationError,
    db_errors,
)
from .models import Document, DocumentMixin, embedding_dimension
from .repository import DocumentRepository
from .results import CollectionInfo
from .schema import aliases as alias_schema
from .schema import indexes
from .schema.catalog import forget, qualified_table, read_catalog
from .schema.collections import check_compatible, create_or_find, find
from .schema.indexes import IndexSpec
from .write import ingest as ingest_wing
from .write.batch import DEFAULT_CHUNK_ROWS, Record, batches_from_records
from .write.load import bulk_load, embed_missing

__all__ = ["ReembedResult", "reembed"]

#: Rows per committed step of the copy (what an interruption can lose).
DEFAULT_COMMIT_ROWS = 20_000
#: Rounds of copying before the switch transaction takes whatever is left.
MAX_ROUNDS = 5
_UNSET: Any = object()


@dataclass(frozen=True)
class ReembedResult:
    """What :func:`reembed` did.

    Attributes:
        source, target: the collections (names).
        alias: the alias switched (or that would have been), if any.
        switched: True when the alias now points to ``target``.
        rows: the target's rows at the end (equal to the source's).
        copied: rows embedded and written by this run (carry-over included).
        deleted: target rows removed because the source no longer had them.
        already: rows the target held at the start of this run (a resumed run).
        carried_over: rows copied in the switch transaction (written to the
            source during the run).
        rounds: copy rounds before the switch transaction.
        index: the ANN index built for the target, if one was.
        sample: rows checked by the nearest-neighbour sample; ``sample_hits``
            of them found their own text.
        embed_s, write_s, index_s, elapsed_s: seconds embedding, writing,
            building the index, and in all.
        copy_s: seconds of the copy rounds (before the index, the sample and the switch).
        sample_s: seconds of the sample check (its texts embedded in one model call).
    """

    source: str
    target: str
    alias: str | None
    switched: bool
    rows: int
    copied: int
    deleted: int
    already: int
    carried_over: int
    rounds: int
    index: str | None
    sample: int
    sample_hits: int
    embed_s: float
    write_s: float
    index_s: float
    elapsed_s: float
    copy_s: float = 0.0
    sample_s: float = 0.0

    @property
    def rows_per_s(self) -> float:
        """Rows copied per second of the whole run."""
        return self.copied / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class _Side:
    """One collection of one document table."""

    model: Any
    table: Table
    qualified: str
    info: CollectionInfo


@dataclass
class _Totals:
    copied: int = 0
    deleted: int = 0
    embed_s: float = 0.0
    write_s: float = 0.0


def reembed(
    bind: Engine | str | URL | None,
    source: str,
    embedder: Embedder,
    *,
    target: str,
    model: Any = None,
    source_model: Any = Document,
    alias: str | None = _UNSET,
    switch: bool = True,
    index: IndexSpec | bool | None = None,
    sample: int = 20,
    min_sample_hits: float = 0.9,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    commit_rows: int = DEFAULT_COMMIT_ROWS,
    lock_timeout_s: float = 30.0,
    progress: bool | None = None,
) -> ReembedResult:
    """Build ``target`` from ``source`` with ``embedder``'s vectors, verify it, switch the alias.

    Args:
        bind: an Engine, a URL, or None (``VECTORSTORE_DATABASE_URL``, else the
            embedded server).  Not a Session: the run commits step by step.
        source: the collection to re-embed, or an alias of it.
        embedder: the new model.  Its dimension must be ``model``'s.
        target: the new collection's name.  If it exists (an interrupted run)
            it is resumed; it must then hold ``embedder``'s vectors, and it is
            made an exact copy of the source (rows the source lacks are removed).
        model: the target's document model (default: ``source_model``); a
            ``DocumentMixin`` class whose ``embedding_dimension`` is the new
            model's.
        source_model: the source's document model (default :class:`~vectorstore.Document`).
        alias: the alias to switch to the target.  Default: ``source`` when it
            is an alias, else none.  It must point to the source collection.
        switch: False builds and verifies without switching.
        index: the ANN index of the target: None (default) builds a
            per-collection HNSW (cosine) when no index serves it yet; an
            :class:`~vectorstore.IndexSpec` builds that one (per collection);
            False builds none.
        sample: rows checked by the nearest-neighbour sample (0: none).
        min_sample_hits: the share of sampled rows that must find their own
            text among their 10 nearest neighbours.
        chunk_rows: rows embedded and sent per COPY.
        commit_rows: rows per committed step.
        lock_timeout_s: how long the switch waits for writers holding the alias
            or the source (then :class:`~vectorstore.QueryTimeoutError`, nothing switched).
        progress: a progress bar; None shows it only on a terminal.

    Raises:
        CollectionNotFoundError: no collection or alias ``source``.
        DimensionMismatchError: ``embedder``'s dimension is not ``model``'s.
        EmbeddingModelMismatchError: ``target`` exists with another model's vectors.
        ValidationError, ConfigurationError: other bad arguments.
        VerificationError: the counts or the sample disagree; nothing switched.
    """
    started = time.perf_counter()
    engine, owned = _engine(bind)
    try:
        plan = _prepare(
            engine, source, embedder, target=target, model=model, source_model=source_model,
            alias=alias, index=index, sample=sample, min_sample_hits=min_sample_hits,
            chunk_rows=chunk_rows, commit_rows=commit_rows, lock_timeout_s=lock_timeout_s,
        )  # fmt: skip
        return _run(plan, switch=switch, progress=progress, started=started)
    finally:
        if owned:
            engine.dispose()


def _engine(bind: Any) -> tuple[Engine, bool]:
    if isinstance(bind, Session):
        raise ConfigurationError(
            "reembed commits step by step (so that it can resume); pass an Engine or a URL, "
            "not a Session"
        )
    if isinstance(bind, Engine):
        return bind, False
    return make_engine(bind), True


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError(f"{name} must be a positive integer, got {value!r}")
    return value


@dataclass
class _Plan:
    engine: Engine
    source: _Side
    target_model: Any
    target_name: str
    embedder: Embedder
    alias: str | None
    index: IndexSpec | bool | None
    sample: int
    min_sample_hits: float
    chunk_rows: int
    commit_rows: int
    lock_timeout_s: float


def _document_model(model: Any, what: str) -> Any:
    check_model_identifiers(model)
    if not (isinstance(model, type) and issubclass(model, DocumentMixin)):
        raise ValidationError(f"{what} must be a DocumentMixin model, got {model!r}")
    return model


def _prepare(
    engine: Engine, source: str, embedder: Embedder, *, target: str, model: Any,
    source_model: Any, alias: Any, index: Any, sample: int, min_sample_hits: float,
    chunk_rows: int, commit_rows: int, lock_timeout_s: float,
) -> _Plan:  # fmt: skip
    """Check everything that can be checked before anything is written."""
    check_collection_name(source)
    check_collection_name(target)
    source_model = _document_model(source_model, "source_model")
    target_model = _document_model(source_model if model is None else model, "model")
    for name in ("model_name", "dimension", "embed"):
        if not hasattr(embedder, name):
            raise ValidationError(f"embedder must be an Embedder, got {type(embedder).__name__}")
    if embedder.dimension != embedding_dimension(target_model):
        raise DimensionMismatchError(
            f"embedder {embedder.model_name!r} makes {embedder.dimension}-d vectors; "
            f"{target_model.__name__}.embedding is {embedding_dimension(target_model)}-d: "
            f"pass model= a DocumentMixin class with embedding_dimension = {embedder.dimension}"
        )
    _positive("chunk_rows", chunk_rows)
    _positive("commit_rows", commit_rows)
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise ValidationError(f"sample must be a non-negative integer, got {sample!r}")
    if not 0.0 <= float(min_sample_hits) <= 1.0:
        raise ValidationError(f"min_sample_hits must be within [0, 1], got {min_sample_hits!r}")
    if not lock_timeout_s > 0:
        raise ValidationError(f"lock_timeout_s must be positive, got {lock_timeout_s!r}")
    if not (index is None or isinstance(index, bool | IndexSpec)):
        raise ValidationError(f"index must be an IndexSpec, True, False or None, got {index!r}")
    with db_errors("reembed: read the collections"), Session(engine) as session:
        found = find(session, source)
        if found is None:
            raise CollectionNotFoundError(f"no collection named {source!r}")
        if embedding_dimension(source_model) != found.dimension:
            raise DimensionMismatchError(
                f"collection {found.name!r} holds {found.dimension}-d vectors; "
                f"source_model {source_model.__name__} is {embedding_dimension(source_model)}-d"
            )
        if alias is _UNSET:
            alias = found.alias
        if alias is not None:
            check_collection_name(alias)
            info = find(session, alias)
            if info is None or info.alias is None:
                raise ValidationError(
                    f"{alias!r} is not an alias; make one with "
                    f"vs.rename_collection(bind, {found.name!r}, <new name>, alias=True)"
                )
            if info.id != found.id:
                raise ValidationError(
                    f"alias {alias!r} points to {info.name!r}, not to the source {found.name!r}"
                )
        existing = find(session, target)
        if existing is not None:
            if existing.alias is not None:
                raise ValidationError(f"target {target!r} is an alias; name a collection")
            if existing.id == found.id:
                raise ValidationError(f"target {target!r} is the source collection itself")
            check_compatible(existing, _spec(target, target_model), embedder)
        table = source_model.__table__
        side = _Side(source_model, table, qualified_table(engine, table), found)
    return _Plan(
        engine, side, target_model, target, embedder, alias, index, sample,
        float(min_sample_hits), chunk_rows, commit_rows, float(lock_timeout_s),
    )  # fmt: skip


def _spec(name: str, model: Any) -> CollectionSpec:
    return CollectionSpec(
        name=name, create=True, dimension=embedding_dimension(model), model_label=model.__name__
    )


def _run(plan: _Plan, *, switch: bool, progress: bool | None, started: float) -> ReembedResult:
    engine = plan.engine
    factory = sessionmaker(engine, expire_on_commit=False)
    sessions = Sessions(factory=factory, label=f"collection {plan.target_name!r}")
    spec = _spec(plan.target_name, plan.target_model)
    with db_errors("reembed: create the target"), factory.begin() as session:
        info = create_or_find(session, spec, plan.embedder, lock=False)
    table = plan.target_model.__table__
    tgt = _Side(plan.target_model, table, qualified_table(engine, table), info)
    target = Target(plan.target_model, info, plan.embedder, sessions, spec)
    src = plan.source
    totals = _Totals()
    already = _count(engine, tgt)
    rounds = 0
    copy, remove = _diff(engine, src, tgt)
    with Progress("reembed", total=len(copy), enabled=progress) as bar:
        while rounds < MAX_ROUNDS:
            if rounds:
                copy, remove = _diff(engine, src, tgt)
            if not copy and not remove:
                break
            if rounds and switch and len(copy) + len(remove) <= plan.chunk_rows:
                break  # little enough for the switch transaction
            rounds += 1
            _delete(engine, tgt, remove, totals)
            for start in range(0, len(copy), plan.commit_rows):
                part = copy[start : start + plan.commit_rows]
                _copy(plan, target, part, totals, bar)
    copy_s = time.perf_counter() - started
    index_name, index_s = _build_index(plan, sessions, tgt)
    began = time.perf_counter()
    hits = _check_sample(plan, tgt)
    sample_s = time.perf_counter() - began
    switched = False
    carried = 0
    rows: int
    with db_errors("reembed: the switch"), factory.begin() as session:
        session.execute(text(f"SET LOCAL lock_timeout = '{int(plan.lock_timeout_s * 1000)}ms'"))
        if switch and plan.alias is not None:
            alias_schema.lock_alias(session, plan.alias)
        session.execute(
            text("SELECT 1 FROM vectorstore_collections WHERE id = :id FOR UPDATE"),
            {"id": src.info.id},
        )
        copy, remove = _diff(session, src, tgt)
        if remove:
            _delete_in(session, tgt, remove)
            totals.deleted += len(remove)
        if copy:
            carried = _copy_in(session, plan, target, src, copy, totals)
        src_rows, rows = _count(session, src), _count(session, tgt)
        if src_rows != rows:
            raise VerificationError(
                f"reembed: {src.info.name!r} holds {src_rows} rows but {tgt.info.name!r} "
                f"holds {rows}; nothing was switched"
            )
        if switch and plan.alias is not None:
            alias_schema.switch_in(session, plan.alias, tgt.info.id, table=tgt.qualified)
            switched = True
    return ReembedResult(
        source=src.info.name, target=tgt.info.name, alias=plan.alias, switched=switched,
        rows=rows, copied=totals.copied, deleted=totals.deleted, already=already,
        carried_over=carried, rounds=rounds, index=index_name, sample=hits[0],
        sample_hits=hits[1], embed_s=totals.embed_s, write_s=totals.write_s, index_s=index_s,
        elapsed_s=time.perf_counter() - started, copy_s=copy_s, sample_s=sample_s,
    )  # fmt: skip


# -- the diff ------------------------------------------------------------------------------
def _keyed(qualified: str, param: str) -> str:
    """Each row's key: (external id, content hash, metadata) and its occurrence number."""
    key = (
        "md5(coalesce('e' || external_id, 'n') || ':' || encode(content_hash, 'hex') "
        "|| ':' || metadata::text)"
    )
    return (
        f"SELECT id, {key} AS k, row_number() OVER (PARTITION BY {key} ORDER BY id) AS n "
        f"FROM {qualified} WHERE collection_id = :{param}"
    )


def _diff(bind: Engine | Session, src: _Side, tgt: _Side) -> tuple[list[int], list[int]]:
    """Source ids the target lacks, and target ids the source no longer has (sorted)."""
    sql = text(
        f"SELECT s.id, t.id FROM ({_keyed(src.qualified, 'src')}) AS s "
        f"FULL JOIN ({_keyed(tgt.qualified, 'tgt')}) AS t ON s.k = t.k AND s.n = t.n "
        "WHERE s.id IS NULL OR t.id IS NULL"
    )
    params = {"src": src.info.id, "tgt": tgt.info.id}
    if isinstance(bind, Session):
        found = bind.execute(sql, params).all()
    else:
        with db_errors("reembed: compare the collections"), bind.connect() as conn:
            found = conn.execute(sql, params).all()
    copy = sorted(int(s) for s, t in found if s is not None)
    remove = sorted(int(t) for s, t in found if s is None)
    return copy, remove


def _count(bind: Engine | Session, side: _Side) -> int:
    sql = text(f"SELECT count(*) FROM {side.qualified} WHERE collection_id = :c")
    if isinstance(bind, Session):
        return int(bind.execute(sql, {"c": side.info.id}).scalar_one())
    with db_errors("reembed: count"), bind.connect() as conn:
        return int(conn.execute(sql, {"c": side.info.id}).scalar_one())


# -- copying -------------------------------------------------------------------------------
_IDS = bindparam("ids", type_=ARRAY(BIGINT))


def _read_records(
    engine: Engine, src: _Side, ids: list[int], chunk_rows: int, bar: Progress | None
) -> Iterator[Record]:
    """The source rows ``ids`` (sorted), as records, read ``chunk_rows`` ids at a time.

    A private reader (its own connection, one short transaction per chunk),
    so the ingest pipeline's reader thread can run it while the main thread
    writes on another connection.
    """
    sql = text(
        f"SELECT external_id, text, metadata FROM {src.qualified} "
        "WHERE collection_id = :c AND id = ANY(:ids) ORDER BY id"
    ).bindparams(_IDS)
    for start in range(0, len(ids), chunk_rows):
        with db_errors("reembed: read the source"), engine.connect() as conn:
            rows = conn.execute(sql, {"c": src.info.id, "ids": ids[start : start + chunk_rows]})
            records = [Record(t, m, e) for e, t, m in rows]
        if bar is not None:
            bar.update(len(records))
        yield from records


def _copy(plan: _Plan, target: Target[Any], ids: list[int], totals: _Totals, bar: Progress) -> None:
    """One committed step: the rows ``ids`` through the ingest pipeline (one transaction)."""
    records = _read_records(plan.engine, plan.source, ids, plan.chunk_rows, bar)
    result, _ = ingest_wing.ingest(
        target, records, on_conflict="error", chunk_rows=plan.chunk_rows, skip_known=False,
        progress=False, rebuild_index=False,
    )  # fmt: skip
    totals.copied += result.inserted
    totals.embed_s += result.embed_s
    totals.write_s += result.write_s


def _copy_in(
    session: Session, plan: _Plan, target: Target[Any], src: _Side, ids: list[int],
    totals: _Totals,
) -> int:  # fmt: skip
    """The last rows, copied inside the switch transaction (``session``'s)."""
    sql = text(
        f"SELECT external_id, text, metadata FROM {src.qualified} "
        "WHERE collection_id = :c AND id = ANY(:ids) ORDER BY id"
    ).bindparams(_IDS)
    rows = session.execute(sql, {"c": src.info.id, "ids": ids}).all()
    records = [Record(t, m, e) for e, t, m in rows]
    inner = Target(target.model, target.collection, target.embedder,
                   Sessions(session=session, label=target.sessions.label), target.spec)  # fmt: skip
    with bulk_load(inner, "error", action="reembed carry-over") as loader:
        for batch in batches_from_records(records, inner.dimension, chunk_rows=plan.chunk_rows):
            began = time.perf_counter()
            embed_missing(batch, plan.embedder)
            totals.embed_s += time.perf_counter() - began
            loader.load([batch])
    totals.write_s += loader.counts.write_s
    totals.copied += loader.counts.inserted
    return loader.counts.inserted


def _delete(engine: Engine, tgt: _Side, ids: list[int], totals: _Totals) -> None:
    if not ids:
        return
    with db_errors("reembed: remove rows"), Session(engine) as session, session.begin():
        _delete_in(session, tgt, ids)
    totals.deleted += len(ids)


def _delete_in(session: Session, tgt: _Side, ids: list[int]) -> None:
    session.execute(
        text(f"DELETE FROM {tgt.qualified} WHERE collection_id = :c AND id = ANY(:ids)")
        .bindparams(_IDS),
        {"c": tgt.info.id, "ids": ids},
    )  # fmt: skip


# -- index and checks ----------------------------------------------------------------------
def _build_index(plan: _Plan, sessions: Sessions, tgt: _Side) -> tuple[str | None, float]:
    if plan.index is False:
        return None, 0.0
    spec = plan.index if isinstance(plan.index, IndexSpec) else None
    if spec is None:
        forget(tgt.table)
        with db_errors("reembed: read the indexes"), Session(plan.engine) as session:
            catalog = read_catalog(session, tgt.table)
        if catalog.has_index("cosine", "vector", tgt.info.id):
            return None, 0.0
        spec = IndexSpec(method="hnsw", metric="cosine", per_collection=True)
    elif not spec.per_collection:
        spec = IndexSpec(**{**spec.__dict__, "per_collection": True})
    began = time.perf_counter()
    name = indexes.create_index(sessions, plan.target_model, spec, collection_id=tgt.info.id)
    return name, time.perf_counter() - began


def _check_sample(plan: _Plan, tgt: _Side) -> tuple[int, int]:
    """How many sampled rows were checked, and how many found their own text (nearest 10)."""
    if plan.sample == 0:
        return 0, 0
    with db_errors("reembed: sample"), plan.engine.connect() as conn:
        picked = [
            int(i) for i in conn.execute(
                text(f"SELECT id FROM {tgt.qualified} WHERE collection_id = :c "
                     "ORDER BY md5(id::text) LIMIT :n"),
                {"c": tgt.info.id, "n": plan.sample},
            ).scalars()
        ]  # fmt: skip
    if not picked:
        return 0, 0
    repo: DocumentRepository[Any] = DocumentRepository.standalone(
        plan.engine, collection=tgt.info.name, embedder=plan.embedder, model=plan.target_model,
        create=False,
    )  # fmt: skip
    hits = 0
    docs = repo.get_many(picked)
    # One model call for all the sampled texts (one call per text costs its overhead each time).
    vectors: Any = plan.embedder.embed([doc.text for doc in docs]) if docs else []
    for doc, vector in zip(docs, vectors, strict=True):
        found = repo.nearest(vector, k=10)
        if any(hit.document.content_hash == doc.content_hash for hit in found):
            hits += 1
    checked = len(picked)
    if hits < plan.min_sample_hits * checked:
        raise VerificationError(
            f"reembed: only {hits} of {checked} sampled rows of {tgt.info.name!r} found their "
            f"own text among their 10 nearest neighbours (at least "
            f"{plan.min_sample_hits:.0%} needed); nothing was switched"
        )
    return checked, hits
