"""Limits of what a write accepts: each refusal is a one-line ValidationError naming
the row, raised before anything is sent, and the table is unchanged.

Also: what ``add`` returns is what ``get`` returns (metadata as stored, i.e. as
JSON), and a database URL with a malformed port is a ConfigurationError that
does not echo the password.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

import vectorstore as vs
from tests.conftest import table_count
from vectorstore.write.batch import MAX_TEXT_BYTES

DIM = vs.DEFAULT_DIMENSION
Repo = vs.DocumentRepository[vs.Document]
DEPTH = vs.MAX_METADATA_DEPTH


def _vec(seed: int = 0) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def nested_dicts(levels: int) -> dict[str, Any]:
    """A mapping ``levels`` deep: ``{"k": {"k": ... {"leaf": 1}}}``."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


def nested_lists(levels: int) -> dict[str, Any]:
    """A mapping ``levels`` deep whose inner levels are lists: ``{"k": [[...[1]...]]}``."""
    value: Any = [1]
    for _ in range(levels - 2):
        value = [value]
    return {"k": value}


@pytest.fixture
def standalone(engine: Engine) -> Repo:
    """A repository that commits each call; its collection already holds one document."""
    repo: Repo = vs.DocumentRepository.standalone(
        engine, collection="limits", embedder=vs.HashingTestEmbedder()
    )
    repo.add("the first document", external_id="first")
    return repo


def _refused(call: Callable[[], Any], engine: Engine) -> vs.ValidationError:
    """Run ``call``: it must raise a one-line ValidationError and leave the table as it was."""
    before = table_count(engine)  # through another connection than the repository's
    with pytest.raises(vs.ValidationError) as caught:
        call()
    message = str(caught.value)
    assert message.isprintable(), message  # one line, no raw control characters
    assert table_count(engine) == before
    return caught.value


# -- metadata depth ----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [nested_dicts, nested_lists], ids=["dicts", "lists"])
@pytest.mark.parametrize("levels", [DEPTH + 1, 1_500, 100_000])
def test_add_refuses_metadata_nested_deeper_than_the_limit(
    standalone: Repo, engine: Engine, shape: Callable[[int], dict[str, Any]], levels: int
) -> None:
    # 1,500 levels made the C JSON encoder raise a bare RecursionError.
    error = _refused(lambda: standalone.add("deep", metadata=shape(levels)), engine)
    assert error.row == 0
    assert f"more than {DEPTH} levels" in str(error)
    assert str(error).startswith("row 0: metadata")


def test_bulk_add_names_the_row_with_too_deep_metadata(standalone: Repo, engine: Engine) -> None:
    records = [{"text": f"doc {i}", "external_id": f"e{i}", "metadata": {"i": i}} for i in range(5)]
    records[3]["metadata"] = nested_dicts(1_500)
    error = _refused(lambda: standalone.bulk_add(records), engine)
    assert (error.row, error.external_id) == (3, "e3")
    assert str(error).startswith("row 3, external_id 'e3': metadata nests")


def test_bulk_add_from_arrays_names_the_row_with_too_deep_metadata(
    standalone: Repo, engine: Engine
) -> None:
    metadata: list[dict[str, Any] | None] = [None, {"ok": True}, nested_lists(2_000)]
    error = _refused(
        lambda: standalone.bulk_add(
            ["a", "b", "c"], embeddings=np.stack([_vec(i) for i in range(3)]), metadata=metadata
        ),
        engine,
    )
    assert error.row == 2


def test_writer_add_refuses_too_deep_metadata_and_buffers_nothing(
    standalone: Repo, engine: Engine
) -> None:
    writer = standalone.writer(max_rows=10, max_delay=None)
    try:
        error = _refused(lambda: writer.add("deep", metadata=nested_dicts(1_500)), engine)
        assert error.row == 0
        writer.add("fine", metadata={"ok": 1})
        assert writer.flush().inserted == 1  # only the valid record was buffered
    finally:
        writer.close()
    assert table_count(engine) == 2


def test_session_bound_add_refuses_too_deep_metadata(repo: Repo, session: Session) -> None:
    repo.add("kept")
    with pytest.raises(vs.ValidationError) as caught:
        repo.add("deep", metadata=nested_lists(1_500))
    assert caught.value.row == 0
    assert repo.count() == 1


def test_metadata_exactly_at_the_limit_round_trips(standalone: Repo) -> None:
    for shape in (nested_dicts, nested_lists):
        doc = standalone.add("at the limit", metadata=shape(DEPTH))
        assert doc.metadata_ == shape(DEPTH)
        assert standalone.get(doc.id).metadata_ == shape(DEPTH)


def test_brackets_inside_strings_are_not_nesting(standalone: Repo) -> None:
    # Many brackets in the JSON text trigger the exact check, which walks the value.
    metadata = {"brackets": "[{" * 1_000, "list": ["{"] * 200}
    doc = standalone.add("strings with brackets", metadata=metadata)
    assert standalone.get(doc.id).metadata_ == metadata


def test_wide_metadata_is_not_deep(standalone: Repo) -> None:
    metadata = {f"k{i}": [{"v": i}] for i in range(1_000)}  # 2,001 brackets, 3 levels
    doc = standalone.add("wide", metadata=metadata)
    assert standalone.get(doc.id).metadata_ == metadata


# -- what add returns is what get returns --------------------------------------------------
NON_STRING_KEYS: dict[Any, Any] = {
    1: "a",
    "nested": {2: (1, 2), None: True, 1.5: "x"},
    "t": ("a", ("b",)),
}
STORED = {"1": "a", "nested": {"2": [1, 2], "null": True, "1.5": "x"}, "t": ["a", ["b"]]}


def test_standalone_add_returns_metadata_as_stored(standalone: Repo) -> None:
    doc = standalone.add("non-string keys", metadata=NON_STRING_KEYS)  # the one-INSERT path
    assert doc.metadata_ == STORED
    assert standalone.get(doc.id).metadata_ == doc.metadata_


def test_standalone_first_add_returns_metadata_as_stored(engine: Engine) -> None:
    # The first write creates the collection (a different path from later adds).
    fresh: Repo = vs.DocumentRepository.standalone(
        engine, collection="fresh", embedder=vs.HashingTestEmbedder()
    )
    doc = fresh.add("non-string keys", metadata=NON_STRING_KEYS)
    assert doc.metadata_ == STORED
    assert fresh.get(doc.id).metadata_ == doc.metadata_


def test_session_bound_add_returns_metadata_as_stored(repo: Repo) -> None:
    repo.add("the first document")
    doc = repo.add("non-string keys", metadata=NON_STRING_KEYS)
    assert doc.metadata_ == STORED
    assert repo.get(doc.id).metadata_ == doc.metadata_


def test_returned_metadata_shares_nothing_with_the_input(standalone: Repo) -> None:
    metadata: dict[str, Any] = {"tags": ["a"]}
    doc = standalone.add("aliasing", metadata=metadata)
    metadata["tags"].append("b")  # the caller reuses its dict
    assert doc.metadata_ == {"tags": ["a"]}


# -- texts and external ids ----------------------------------------------------------------
BAD_INPUTS = [
    ("text-nul", lambda r: r.add("before\x00after"), "NUL"),
    ("text-lone-surrogate", lambda r: r.add("broken \udc80 text"), "lone surrogate"),
    ("text-surrogate-pair-halves", lambda r: r.add("\ud83d\ude00 halves"), "lone surrogate"),
    ("external-id-nul", lambda r: r.add("t", external_id="a\x00b"), "NUL"),
    ("external-id-surrogate", lambda r: r.add("t", external_id="x\udfffy"), "not valid Unicode"),
    ("metadata-key-surrogate", lambda r: r.add("t", metadata={"\ud800": 1}), "lone surrogate"),
    ("metadata-value-nul", lambda r: r.add("t", metadata={"k": ["a\x00"]}), "NUL"),
    ("bulk-text-nul", lambda r: r.bulk_add(["ok", "bad\x00"]), "NUL"),
    ("bulk-external-id-surrogate",
     lambda r: r.bulk_add([{"text": "a", "external_id": "\udc00"}]), "not valid Unicode"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "words"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_nul_and_lone_surrogates_are_refused(
    standalone: Repo, engine: Engine, call: Callable[[Repo], Any], words: str
) -> None:
    error = _refused(lambda: call(standalone), engine)
    assert words in str(error)
    assert error.row is not None


class _Evil:
    """A value whose type name is a terminal escape sequence and a newline."""


_Evil.__name__ = "Evil\x1b[2J\r\n"

CONTROL_ECHOES = [
    # A valid external id with control characters, echoed next to another problem.
    ("external-id-echoed", lambda r: r.add("", external_id="id\x1b[31m\n"), "'id\\x1b[31m\\n'"),
    ("record-key-echoed", lambda r: r.bulk_add([{"text": "a", "te\nxt\x07": 1}]), "te\\nxt\\x07"),
    ("type-name-echoed", lambda r: r.add("t", metadata={"v": _Evil()}), "Evil\\x1b[2J\\r\\n"),
    ("text-type-echoed", lambda r: r.add(_Evil()), "Evil\\x1b[2J\\r\\n"),
    ("bidi-override", lambda r: r.add("", external_id="\u202eevil"), "\\u202eevil"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "escaped"), [c[1:] for c in CONTROL_ECHOES], ids=[c[0] for c in CONTROL_ECHOES]
)
def test_error_messages_escape_control_characters(
    standalone: Repo, engine: Engine, call: Callable[[Repo], Any], escaped: str
) -> None:
    error = _refused(lambda: call(standalone), engine)
    assert escaped in str(error)


def test_text_size_limit_still_names_the_row(standalone: Repo, engine: Engine) -> None:
    big = "a" * (MAX_TEXT_BYTES + 1)
    error = _refused(
        lambda: standalone.bulk_add(["small", big], embeddings=[_vec(), _vec()]), engine
    )
    assert error.row == 1
    assert "limit is 1,000,000" in str(error)


# -- database URLs -------------------------------------------------------------------------
BAD_PORT_URLS = [
    "postgresql://user:s3cret-pw@/db?host=/tmp&port=abc",
    "postgresql+psycopg://user:s3cret-pw@/db?host=/tmp&port=abc",
    "postgresql://user:s3cret-pw@/db?host=/a,/b&port=5432,x",
    "postgresql://user:s3cret-pw@localhost:99999/db",
    "postgresql://user:s3cret-pw@localhost:0/db",
]


@pytest.mark.parametrize("url", BAD_PORT_URLS)
def test_a_malformed_port_is_a_configuration_error_without_the_password(url: str) -> None:
    for make in (vs.normalize_url, vs.make_engine):
        with pytest.raises(vs.ConfigurationError) as caught:
            make(url)
        assert "port" in str(caught.value)
        for error in _chain(caught.value):
            assert "s3cret-pw" not in str(error)
            assert "s3cret-pw" not in repr(error)


def test_mismatched_host_and_port_lists_are_a_configuration_error() -> None:
    url = "postgresql://user:s3cret-pw@/db?host=/tmp&port=5432&port=5433"
    with pytest.raises(vs.ConfigurationError) as caught:
        vs.make_engine(url)
    assert "hosts and ports" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)


def test_valid_ports_are_accepted() -> None:
    for url in (
        "postgresql://u@/db?host=/tmp&port=5432",
        "postgresql://u@/db?host=/a,/b&port=5432,5433",
        "postgresql://u@localhost:65535/db",
    ):
        vs.make_engine(url).dispose()  # no connection is made


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__
