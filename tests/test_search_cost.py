"""nearest's cost-based choice on a correlated filter: local share, witnesses, measured constants.

The data: 2,000 rows in two far-apart clusters; the category ``"a"`` is the
whole first cluster (400 rows, 20 %), ``"b"`` the rest.  A query inside
cluster a filtering on a finds its matches at once (an iterative scan is
cheap); a query inside cluster b filtering on a is anti-correlated: no
sampled row near it matches, an iterative scan would walk the whole of b
first, so the planner ranks exactly, where a row-count rule
(``exact_threshold=100``: 400 rows > 100) sends it to the iterative scan.

The collection fits in the metadata sample whole, so the estimates are
exact, and the cost constants are set per engine (:func:`_costs`) so the
choice does not depend on this machine's timings; one test measures them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import URL, Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs
from vectorstore.query import cost, selectivity
from vectorstore.query.cost import CostModel
from vectorstore.query.options import (
    DEFAULT_FILTERED_EF_SEARCH,
    HNSW_MAX_EF,
    ITERATIVE_FETCH,
    iterative_ef,
    overfetch_for,
)

Repo = vs.DocumentRepository[vs.Document]
N, IN_A = 2000, 400
#: Exact: 400 rows x 0.01 = 4 ms; iterative: 1 ms + 0.01 ms a tuple.
COSTS = CostModel(exact_row_ms=0.01, iterative_base_ms=1.0, iterative_tuple_ms=0.01, measured=True)


def _data() -> tuple[np.ndarray[Any, Any], list[str]]:
    rng = np.random.default_rng(21)
    centres = rng.standard_normal((2, 384)).astype(np.float32) * 3
    labels = np.array([0] * IN_A + [1] * (N - IN_A))
    rng.shuffle(labels)
    vectors = centres[labels] + rng.standard_normal((N, 384)).astype(np.float32)
    return vectors.astype(np.float32), ["a" if c == 0 else "b" for c in labels]


DATA, CATS = _data()


def _exact(q: np.ndarray[Any, Any], cat: str | None, k: int = 10,
           keep: Callable[[int], bool] | None = None) -> list[str]:  # fmt: skip
    """The ids of the k rows nearest ``q`` in ``cat`` (None: any) that ``keep`` keeps."""
    unit = DATA / np.linalg.norm(DATA, axis=1, keepdims=True)
    d = 1 - unit @ (q / np.linalg.norm(q))
    order = [int(i) for i in np.argsort(d)]
    order = [i for i in order if (cat is None or CATS[i] == cat) and (keep is None or keep(i))]
    return [str(i) for i in order[:k]]


def _load(engine: Engine) -> None:
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="cost", embedding_model="x")
    repo.bulk_add(
        [f"row {i}" for i in range(N)],
        embeddings=DATA,
        metadata=[{"cat": c, "i": i} for i, c in enumerate(CATS)],
        external_ids=[str(i) for i in range(N)],
    )
    with engine.begin() as conn:
        conn.execute(text("ANALYZE vectorstore_documents"))


def _costs(engine: Engine) -> None:
    cost._COSTS.setdefault(engine, {})[("vectorstore_documents", "cosine")] = COSTS


@pytest.fixture
def loaded(any_driver_url: URL) -> Iterator[Engine]:
    engine = vs.make_engine(any_driver_url)
    _load(engine)
    _costs(engine)
    yield engine
    engine.dispose()


def _query(cluster: str, seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    rows = [i for i, c in enumerate(CATS) if c == cluster]
    i = rows[int(rng.integers(0, len(rows)))]
    out: np.ndarray[Any, Any] = (DATA[i] + 0.1 * rng.standard_normal(384)).astype(np.float32)
    return out


def _ids(hits: vs.ResultSet[Any]) -> list[str]:
    return [h.document.external_id for h in hits]


def test_an_anti_correlated_filter_is_ranked_exactly(loaded: Engine) -> None:
    repo: Repo = vs.DocumentRepository.standalone(loaded, collection="cost")
    q = _query("b", 1)
    by_count = repo.nearest(q, k=10, filter={"cat": "a"}, exact_threshold=100)
    assert by_count.strategy == "iterative"  # 400 rows > 100: the row-count rule
    for _ in range(2):  # the first call reads the sample; the second plans from caches
        hits = repo.nearest(q, k=10, filter={"cat": "a"})
        assert hits.strategy == "exact"
        assert hits.fallback_from is None
        assert _ids(hits) == _exact(q, "a")
        assert hits.estimated_rows == IN_A
        assert hits.reason.startswith(f"sampled estimate {IN_A} of {N} rows, local share 0 ")
        assert "would lose recall" in hits.reason
        assert hits.estimates["local_share"] == 0.0
        assert hits.estimates["iterative_tuples"] == -1.0  # unbounded
        assert hits.estimates["exact_ms"] == pytest.approx(IN_A * COSTS.exact_row_ms)


def test_a_correlated_filter_stays_on_the_cheaper_iterative_scan(loaded: Engine) -> None:
    repo: Repo = vs.DocumentRepository.standalone(loaded, collection="cost")
    q = _query("a", 2)
    for _ in range(2):
        hits = repo.nearest(q, k=10, filter={"cat": "a"})
        assert hits.strategy == "iterative"
        assert hits.fallback_from is None
        assert hits.returned == 10
        assert all(h.document.metadata_["cat"] == "a" for h in hits)
        assert _ids(hits)[0] == _exact(q, "a")[0]
        # 1,000 sampled rows stand for the 1,000 nearest (SAFE_RANK): 400 match.
        assert hits.estimates["local_share"] == pytest.approx(0.4)
        assert hits.estimates["iterative_tuples"] == pytest.approx(25.0)
        # Inside the filtered rows (local share 0.4 >= the whole's 0.2): k are fetched.
        assert "overfetch" not in hits.estimates
        assert hits.estimates["iterative_ms"] < hits.estimates["exact_ms"]
        # 40 % match near the query: 160 of a list of 400 (iterative_ef keeps it).
        assert hits.estimates["ef_search"] == DEFAULT_FILTERED_EF_SEARCH
        assert hits.settings["hnsw.ef_search"] == str(DEFAULT_FILTERED_EF_SEARCH)
        assert "iterative ~25 tuples ~1.25 ms, exact ~4.00 ms" in hits.reason


def test_a_tiny_filter_is_ranked_exactly_without_the_local_estimate(loaded: Engine) -> None:
    repo: Repo = vs.DocumentRepository.standalone(loaded, collection="cost")
    q = _query("a", 3)
    hits = repo.nearest(q, k=10, filter={"i": {"$in": list(range(8))}})
    assert hits.strategy == "exact"
    assert hits.reason.endswith("at most k + offset = 10 match")
    assert "local_share" not in hits.estimates
    assert sorted(_ids(hits), key=int) == [str(i) for i in range(8)]
    few = repo.nearest(q, k=10, filter={"i": {"$in": list(range(40))}})  # the GIN finds them
    assert few.strategy == "exact"
    assert "<= an iterative scan's start" in few.reason  # 40 x 0.01 ms <= 1 ms
    assert "local_share" not in few.estimates
    # The same few rows by a range no index serves: read all 2,000 first.
    ranged = repo.nearest(q, k=10, filter={"i": {"$lt": 8}})
    assert ranged.strategy == "exact"
    assert "no index serves the filter" in ranged.reason
    assert sorted(_ids(ranged), key=int) == [str(i) for i in range(8)]


def test_a_filter_no_index_serves_costs_the_whole_collection(loaded: Engine) -> None:
    # A range on a key without a btree of its own: the GIN index cannot narrow
    # it, so the exact ranking reads all 2,000 rows (at half a ranked row's
    # cost) before it ranks the 1,000 that match.
    repo: Repo = vs.DocumentRepository.standalone(loaded, collection="cost")
    q = _query("a", 7)
    ranged = repo.nearest(q, k=10, filter={"i": {"$lt": 1000}})
    assert ranged.estimated_rows == 1000
    assert ranged.estimates["exact_ms"] == pytest.approx(1000 * 0.01 + N * 0.01 * cost.SCAN_SHARE)
    assert "no index serves the filter: the exact ranking reads all 2000" in ranged.reason
    listed = repo.nearest(q, k=10, filter={"i": {"$in": list(range(0, 2000, 2))}})  # 1,000 values
    assert listed.estimates["exact_ms"] == pytest.approx(1000 * 0.01 + N * 0.01 * cost.SCAN_SHARE)
    served = repo.nearest(q, k=10, filter={"cat": "a"})  # the GIN serves an equality
    assert served.estimates["exact_ms"] == pytest.approx(IN_A * 0.01)
    assert "no index serves" not in served.reason
    for hits, wanted in ((ranged, lambda i: i < 1000), (listed, lambda i: i % 2 == 0)):
        best = _exact(q, None, keep=wanted)
        assert len(set(_ids(hits)) & set(best)) >= 9  # exact or iterative: the nearest


def _plant_witness(engine: Engine, q: np.ndarray[Any, Any]) -> str:
    """Make the cached sample claim that a far matching row lies at the query.

    The iterative scan cannot return it (it is far), so its result provably
    misses a matching row nearer than its farthest: what a scan whose budget
    ran out leaves.  Returns the planted row's external id.
    """
    sample = next(iter(selectivity._CACHE[engine].values()))
    far = max((i for i, c in enumerate(CATS) if c == "a"),
              key=lambda i: float(np.linalg.norm(DATA[i] - q)))  # fmt: skip
    at = sample.ids.index(far + 1)  # ids start at 1 in insertion order
    sample.vectors[at] = q
    sample._derived.clear()
    return str(far)


def test_a_scan_that_misses_a_witness_finishes_exactly(loaded: Engine) -> None:
    repo: Repo = vs.DocumentRepository.standalone(loaded, collection="cost")
    q = _query("a", 4)
    assert repo.nearest(q, k=10, filter={"cat": "a"}).strategy == "iterative"
    planted = _plant_witness(loaded, q)
    for _ in range(2):  # the raw path (cached plan), then again
        hits = repo.nearest(q, k=10, filter={"cat": "a"})
        assert hits.fallback_from == "iterative"
        assert hits.strategy == "exact"
        assert hits.reason.startswith(f"iterative missed sampled matching row {int(planted) + 1}")
        assert _ids(hits) == _exact(q, "a")
    with Session(loaded) as session:  # the session path checks the same witnesses
        inside: Repo = vs.DocumentRepository(session, collection="cost")
        hits = inside.nearest(q, k=10, filter={"cat": "a"})
        assert hits.fallback_from == "iterative"
        assert _ids(hits) == _exact(q, "a")


def test_the_constants_are_measured_once_per_engine_and_leave_no_settings(
    any_driver_url: URL,
) -> None:
    engine = vs.make_engine(any_driver_url)
    try:
        _load(engine)
        with Session(engine) as session:
            session.execute(text("SET LOCAL hnsw.ef_search = 33"))
            repo: Repo = vs.DocumentRepository(session, collection="cost")
            hits = repo.nearest(_query("a", 5), k=10, filter={"cat": "a"})
            assert hits.returned == 10
            shown = session.execute(text(
                "SELECT current_setting('hnsw.ef_search'), current_setting('enable_seqscan'), "
                "current_setting('hnsw.iterative_scan')")).one()  # fmt: skip
            assert tuple(shown) == ("33", "on", "off")
            assert repo.count() == N  # the host transaction is intact
            session.rollback()
        measured = cost.cached_costs(engine, "vectorstore_documents", "cosine")
        assert measured is not None
        assert measured.measured
        assert measured.exact_row_ms > 0
        assert measured.iterative_base_ms > 0
        assert measured.iterative_tuple_ms > 0
    finally:
        engine.dispose()


def test_a_witness_proves_a_miss_only_when_nearer_and_absent() -> None:
    witnesses = ((7, 0.10), (9, 0.30))
    assert cost.missed(witnesses, [(1, 0.05), (2, 0.20)]) == (7, 0.10)
    assert cost.missed(witnesses, [(7, 0.10), (2, 0.20)]) is None  # 9 is farther
    assert cost.missed(witnesses, [(1, 0.05), (2, 0.10)]) is None  # a tie is rounding
    assert cost.missed((), [(1, 0.5)]) is None
    assert cost.missed(witnesses, []) is None


def test_the_local_share_reads_the_sampled_rows_nearest_the_query() -> None:
    axes = np.eye(4, dtype=np.float32)
    vectors = axes[[0] * 10 + [3] * 30]  # 10 matching rows along axis 0, 30 others along 3
    sample = selectivity.MetadataSample(
        rows=100_000, metadata=tuple({"n": i} for i in range(40)),
        ids=tuple(range(100, 140)), vectors=vectors,
    )  # fmt: skip
    mask = np.arange(40) < 10
    near = cost.local_estimate(sample, mask, axes[0], "cosine", 10, 1.0)
    far = cost.local_estimate(sample, mask, axes[3], "cosine", 10, 1.0)
    assert near is not None
    assert far is not None
    assert near.looked == far.looked == cost.LOCAL_ROWS
    assert near.share == pytest.approx(0.5)  # 10 matching + 10 others at distance 1
    assert near.tuples == pytest.approx(20.0)
    assert far.share == 0.0
    assert far.tuples == float("inf")
    assert [w[0] for w in near.witnesses] == list(range(100, 100 + cost.WITNESSES))
    assert far.witnesses[0][1] == pytest.approx(1.0)
    assert near.share / 2 == pytest.approx(
        cost.local_estimate(sample, mask, axes[0], "cosine", 10, 0.5).share  # type: ignore[union-attr]
    )  # another collection's rows share the graph
    bare = selectivity.MetadataSample(rows=40, metadata=sample.metadata)
    assert cost.local_estimate(bare, mask, axes[0], "cosine", 10, 1.0) is None


def _nodes(
    node: dict[str, Any], parents: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    yield parents, node
    for child in node.get("Plans", []):
        yield from _nodes(child, (*parents, node["Node Type"]))


def test_an_iterative_scan_keeps_the_nearest_of_more_matches_than_it_returns(
    loaded: Engine,
) -> None:
    # relaxed_order: the first k matches a scan meets are near, not always the
    # nearest; the statement fetches ITERATIVE_FETCH x k and sorts them.
    repo: Repo = vs.DocumentRepository.standalone(loaded, collection="cost")
    q = _query("a", 2)
    report = repo.explain(q, k=10, filter={"cat": "a"}, strategy="iterative")
    scans = [(up, n) for up, n in _nodes(report.plan[0]["Plan"])
             if n.get("Index Name", "").endswith("_hnsw")]  # fmt: skip
    assert len(scans) == 1  # one walk of the graph, under the filter
    parents, scan = scans[0]
    assert scan["Actual Rows"] == 10 * ITERATIVE_FETCH
    # A real Sort between the candidates and the LIMIT k: not the scan's order.
    assert parents[:2] == ("Limit", "Sort")
    hits = repo.nearest(q, k=10, filter={"cat": "a"}, strategy="iterative")
    assert hits.strategy == "iterative"
    assert hits.returned == 10
    assert _ids(hits)[0] == _exact(q, "a")[0]
    distances = [h.distance for h in hits]
    assert distances == sorted(distances)


def test_the_planner_fetches_more_only_away_from_the_filtered_rows() -> None:
    assert overfetch_for(0.1, 0.5) == ITERATIVE_FETCH  # sparser near the query: away
    assert overfetch_for(0.24, 0.5) == ITERATIVE_FETCH
    assert overfetch_for(0.25, 0.5) == 1  # at AWAY_SHARE of the whole: not away
    assert overfetch_for(0.5, 0.5) == 1
    assert overfetch_for(0.9, 0.5) == 1  # inside


def test_the_candidate_list_widens_as_the_local_share_falls() -> None:
    # ef_search x local share matching rows in the list: at least 100, from
    # 400 to pgvector's 1,000.
    assert iterative_ef(1.0) == iterative_ef(0.25) == DEFAULT_FILTERED_EF_SEARCH
    assert iterative_ef(0.2) == 500
    assert iterative_ef(1 / 6) == 600
    assert iterative_ef(0.1) == iterative_ef(0.01) == iterative_ef(0.0) == HNSW_MAX_EF
    # The scan's start grows with the list; a quarter of it does not.
    assert COSTS.iterative_ms(0) == COSTS.iterative_ms(0, DEFAULT_FILTERED_EF_SEARCH) == 1.0
    assert COSTS.iterative_ms(0, 1000) == pytest.approx(0.25 + 0.75 * 2.5)
    assert COSTS.iterative_ms(10, 200) == pytest.approx(0.25 + 0.75 * 0.5 + 0.1)


def test_a_collection_in_a_shared_table_is_scanned_with_a_wider_list(loaded: Engine) -> None:
    # A tenant that is a twelfth of the table, searched through the table-wide
    # index with no other filter: a twelfth of the candidates are its own, so
    # at the unfiltered ef_search 200 its k-th row sits at rank ~120 of 200
    # (measured on a tenant of 17 %: recall 0.970 at 200, 0.993 at 600).
    other: Repo = vs.DocumentRepository.standalone(loaded, collection="other", embedding_model="x")
    rng = np.random.default_rng(5)
    other.bulk_add([f"other {i}" for i in range(11 * N)],
                   embeddings=rng.standard_normal((11 * N, 384)).astype(np.float32))  # fmt: skip
    with loaded.begin() as conn:
        conn.execute(text("ANALYZE vectorstore_documents"))
    repo: Repo = vs.DocumentRepository.standalone(loaded, collection="cost")
    q = _query("a", 6)
    for _ in range(2):  # from the connection, then from the caches (raw path)
        hits = repo.nearest(q, k=10)
        assert hits.strategy == "iterative"
        assert hits.fallback_from is None
        assert hits.estimates["local_share"] == pytest.approx(1 / 12, abs=0.01)
        assert hits.estimates["ef_search"] == HNSW_MAX_EF
        assert hits.settings["hnsw.ef_search"] == str(HNSW_MAX_EF)
        assert hits.settings["enable_sort"] == "off"  # pinned to the index
        assert f"at ef_search {HNSW_MAX_EF}" in hits.reason
        assert _ids(hits) == _exact(q, None)
    # A given ef_search stands: the caller's choice is not widened.
    assert repo.nearest(q, k=10, ef_search=300).settings["hnsw.ef_search"] == "300"


def test_a_range_is_estimated_on_rows_spread_through_the_sample() -> None:
    # A sample comes in the heap's order: the oldest rows first.  A range on a
    # value that grows with insertion (a day, a counter) judged by the first
    # rows alone kept all of them (estimated 2,000 of 2,000 for half).
    ordered = selectivity.MetadataSample(rows=20_000, metadata=tuple({"i": i} for i in range(2000)))
    assert ordered.estimate({"i": {"$lt": 1000}}) == 10_000
    assert ordered.estimate({"i": {"$gte": 1500}}) == 5_000
    assert ordered.estimate({"i": {"$lt": 8}}) == 80  # 2 of the 500 read: i = 0, 4


def test_a_collection_that_is_half_the_table_gets_the_filtered_list(loaded: Engine) -> None:
    # Its own rows are half the graph: a filter of the collection, 400 wide
    # (the unfiltered 200 is for a scan that keeps every row it meets).
    other: Repo = vs.DocumentRepository.standalone(loaded, collection="half", embedding_model="x")
    rng = np.random.default_rng(8)
    other.bulk_add([f"half {i}" for i in range(N)],
                   embeddings=rng.standard_normal((N, 384)).astype(np.float32))  # fmt: skip
    with loaded.begin() as conn:
        conn.execute(text("ANALYZE vectorstore_documents"))
    repo: Repo = vs.DocumentRepository.standalone(loaded, collection="cost")
    hits = repo.nearest(_query("a", 9), k=10)
    assert hits.strategy == "iterative"
    assert hits.estimates["local_share"] == pytest.approx(0.5, abs=0.05)
    assert hits.settings["hnsw.ef_search"] == str(DEFAULT_FILTERED_EF_SEARCH)


def test_a_full_read_of_a_large_collection_warns_once_naming_what_to_index(
    loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vectorstore.query import advice

    monkeypatch.setattr(advice, "FULL_READ_WARN_ROWS", N)  # 2,000 rows count as large here
    monkeypatch.setattr(advice, "_WARNED", set())
    repo: Repo = vs.DocumentRepository.standalone(loaded, collection="cost")
    q = _query("a", 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the once is vectorstore's, not the warnings module's
        ranged = repo.nearest(q, k=10, filter={"i": {"$lt": 8}})
        again = repo.nearest(q, k=10, filter={"i": {"$lt": 8}})  # from caches: no second warning
        repo.nearest(q, k=10, filter={"cat": "a"})  # served by the GIN index
        repo.nearest(q, k=10, filter={"i": {"$in": list(range(8))}})  # served too
        # A column no btree leads with (every row was created today: none match).
        dated = repo.nearest(q, k=10, filter={"created_at": {"$lt": "2000-01-01"}})
    found = [w for w in caught if issubclass(w.category, vs.UnindexedFilterWarning)]
    assert [sorted(w.message.fields) for w in found] == [["i"], ["created_at"]]  # type: ignore[union-attr]
    first, second = (w.message for w in found)
    assert isinstance(first, vs.UnindexedFilterWarning)
    assert isinstance(second, vs.UnindexedFilterWarning)
    assert first.fields == {"i": ("$lt",)}
    assert first.rows == N
    assert "indexed_metadata_keys = ('i',)" in str(first)
    assert f"reading all ~{N:,} of its rows" in str(first)
    assert "btree on (collection_id, created_at)" in str(second)
    assert found[0].filename == __file__  # pointed at the caller's line
    # Warned or not, the results are the exact ones.
    assert ranged.strategy == again.strategy == dated.strategy == "exact"
    eight = [str(i) for i in range(8)]
    assert sorted(_ids(ranged), key=int) == sorted(_ids(again), key=int) == eight
    assert _ids(dated) == []


def test_a_declared_key_without_its_btree_is_not_counted_as_served(
    loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # indexed_metadata_keys compiles ranges to the btree's expression, but
    # only the catalog knows whether the btree exists: until it does, the
    # range reads every row, the estimate says so, and the warning says why.
    from sqlalchemy import MetaData
    from sqlalchemy.orm import DeclarativeBase

    from vectorstore.query import advice
    from vectorstore.schema.catalog import forget

    class _Base(DeclarativeBase):
        metadata = MetaData()

    class KeyedDoc(vs.DocumentMixin, _Base):
        __tablename__ = "vectorstore_documents"
        indexed_metadata_keys = ("i",)

    monkeypatch.setattr(advice, "FULL_READ_WARN_ROWS", N)
    monkeypatch.setattr(advice, "_WARNED", set())
    repo = vs.DocumentRepository.standalone(loaded, collection="cost", model=KeyedDoc)
    q = _query("a", 5)
    with pytest.warns(vs.UnindexedFilterWarning, match="btree does not exist") as caught:
        before = repo.nearest(q, k=10, filter={"i": {"$lt": 8}})
    assert len(caught) == 1
    assert "no index serves the filter" in before.reason
    index = next(i for i in KeyedDoc.__table__.indexes if i.name.endswith("_metadata_i"))
    with loaded.begin() as conn:
        index.create(conn)
    forget(KeyedDoc.__table__)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", vs.UnindexedFilterWarning)
            after = repo.nearest(q, k=10, filter={"i": {"$lt": 8}})
        assert "no index serves" not in after.reason
        assert after.estimates["exact_ms"] == pytest.approx(8 * COSTS.exact_row_ms)
        assert sorted(_ids(after), key=int) == [str(i) for i in range(8)]
    finally:
        with loaded.begin() as conn:
            index.drop(conn)
        forget(KeyedDoc.__table__)


def test_a_created_at_range_is_estimated_on_the_sample_and_planned_by_cost(
    loaded: Engine,
) -> None:
    # created_at is sampled with the metadata: a time range (the filter that
    # follows topic drift in an app) gets the cost model, its local share and
    # witnesses, where it had the planner's guess and a bounded count.
    from datetime import UTC, datetime, timedelta

    with loaded.begin() as conn:  # row i was created at hour i
        conn.execute(text(
            "UPDATE vectorstore_documents SET created_at = "
            "timestamptz '2020-01-01 00:00+00' + external_id::int * interval '1 hour'"
        ))  # fmt: skip
    selectivity._CACHE.pop(loaded, None)
    repo: Repo = vs.DocumentRepository.standalone(loaded, collection="cost")
    start = datetime(2020, 1, 1, tzinfo=UTC)
    lo, hi = start + timedelta(hours=100), start + timedelta(hours=400)
    q = _query("a", 8)
    in_range = [i for i in range(N) if 100 <= i < 400]
    wanted = set(in_range)
    for spec in (
        {"created_at": {"$gte": lo.isoformat(), "$lt": hi.isoformat()}},
        {"created_at": {"$gte": lo, "$lt": hi}},  # datetimes: the same rows
        {"created_at": {"$between": [lo.isoformat(), (hi - timedelta(hours=1)).isoformat()]}},
    ):
        hits = repo.nearest(q, k=10, filter=spec)
        assert hits.estimated_rows == len(in_range), spec  # the sample holds every row
        assert hits.counted_rows is None  # no bounded count
        assert hits.reason.startswith(f"sampled estimate {len(in_range)} of {N} rows"), spec
        assert "no index serves the filter" in hits.reason  # no btree on created_at
        assert _ids(hits) == _exact(q, None, keep=lambda i: i in wanted)
    # The primary key serves an id range; an external_id list is estimated too.
    first = int(repo.nearest(q, k=1, filter={"external_id": "0"})[0].document.id)
    by_id = repo.nearest(q, k=10, filter={"id": {"$lt": first + 50}})
    assert by_id.estimated_rows == 50
    assert "no index serves" not in by_id.reason
    assert sorted(_ids(by_id), key=int) == sorted(_exact(q, None, keep=lambda i: i < 50), key=int)
    thirds = [str(i) for i in range(0, N, 3)]  # evaluated on 500 of the 2,000: ~N/3
    listed = repo.nearest(q, k=10, filter={"external_id": {"$in": thirds}})
    assert listed.estimated_rows == pytest.approx(N / 3, rel=0.05)
    # A bound the sample cannot read is the compiler's to refuse.
    with pytest.raises(vs.FilterError, match="ISO"):
        repo.nearest(q, k=10, filter={"created_at": {"$gte": "last tuesday"}})
