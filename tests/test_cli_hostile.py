"""Hostile and malformed input to the ``vectorstore`` command, through its real entry point.

Each case runs the installed console script as a subprocess against one
database of the shared test server (``--database-url``) and requires what a
user of the command needs: exit status 1 (2 for what argparse rejects), one
clear line on stderr, no traceback, and the database exactly as it was (a
fingerprint of every vectorstore row, the tables and the indexes, taken before
and after).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL, create_engine, text
from sqlalchemy.pool import NullPool

import vectorstore as vs
from tests._dedicated import cloned_database
from tests.test_cli import SCRIPT, cli_env

SQL = "pets'; DROP TABLE vectorstore_documents; --"


@pytest.fixture(scope="module")
def loaded(postgresql_noproc: Any) -> Iterator[URL]:
    """A database holding the collection ``pets`` (hashing embedder), shared by the module."""
    with cloned_database(
        postgresql_noproc.template_dbname, f"vectorstore_cli_hostile_{os.getpid()}"
    ) as url:
        engine = vs.make_engine(url)
        try:
            repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
                engine, collection="pets", embedder=vs.HashingTestEmbedder()
            )
            repo.bulk_add(
                ["a cat on the mat", "a dog in the fog", "a bird on a wire"],
                metadata=[{"kind": "cat"}, {"kind": "dog"}, {"kind": "bird"}],
                external_ids=["c", "d", "b"],
            )
        finally:
            engine.dispose()
        yield url


def fingerprint(url: URL) -> tuple[Any, ...]:
    """Every vectorstore row, the public tables and the indexes, as one comparable value."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return tuple(
                conn.execute(text(sql)).all()
                for sql in (
                    "SELECT id, name, embedding_model, dimension FROM vectorstore_collections "
                    "ORDER BY id",
                    "SELECT id, collection_id, external_id, text, metadata::text, "
                    "md5(embedding::text) FROM vectorstore_documents ORDER BY id",
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
                    "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
                )
            )
    finally:
        engine.dispose()


def cli(url: URL | str, *args: str) -> subprocess.CompletedProcess[str]:
    shown = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    return subprocess.run(
        [str(SCRIPT), "--database-url", shown, *args],
        capture_output=True, text=True, env=cli_env(), timeout=300,
    )  # fmt: skip


def assert_one_line(done: subprocess.CompletedProcess[str], status: int, *needles: str) -> str:
    """``status``, no traceback, and one line on stderr that says what is wrong."""
    assert done.returncode == status, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    # argparse's usage errors come after its usage line(s); ours are the only line.
    last = lines[-1]
    if status == 1:
        assert len(lines) == 1, done.stderr
        assert last.startswith("error: ")
    else:
        assert ": error: " in last, done.stderr
    for needle in needles:
        assert needle in last, last
    return last


SEARCH = ["search", "a cat", "-c", "pets"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--filter", "{not json"], "--filter is not valid JSON"),
        (["--filter", ""], "--filter"),
        (["--filter", "[1, 2]"], "must be a JSON object"),
        (["--filter", '"kind"'], "must be a JSON object"),
        (["--filter", '{"kind": {"$nope": 1}}'], "$nope"),
        (["--filter", '{"$and": "cat"}'], "$and"),
        (["--filter", '{"kind": {"$in": "cat"}}'], "$in"),
        (["--filter", "{" * 5000 + "}" * 5000], "--filter"),
        (["--filter", '{"$not": ' * 200 + '{"kind": "cat"}' + "}" * 200], "nested deeper"),
        (["--filter", '{"kind": {"$gt": {"x": 1}}}'], "$gt"),
        (["--where", "kind"], "--where expects key=value"),
        (["--where", "=cat"], "--where expects key=value"),
        (["--where", "kind=cat", "--filter", '{"kind": "dog"}'], "both constrain"),
        (["-c", SQL], "no collection named"),
        (["-c", ""], "collection name"),
        (["-k", str(10**30)], "k"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_bad_search_input_is_one_line_and_changes_nothing(
    loaded: URL, args: list[str], needle: str
) -> None:
    before = fingerprint(loaded)
    assert_one_line(cli(loaded, *SEARCH, *args), 1, needle)
    assert fingerprint(loaded) == before


@pytest.mark.parametrize("k", ["0", "-1", "-99999999999999999999", "ten", "1.5", ""])
def test_bad_k_is_a_usage_error(loaded: URL, k: str) -> None:
    before = fingerprint(loaded)
    assert_one_line(cli(loaded, *SEARCH, "-k", k), 2, "positive integer")
    assert fingerprint(loaded) == before


@pytest.mark.parametrize(
    "args",
    [
        ["--where", "kind=cat' OR '1'='1"],
        ["--filter", '{"kind\'; DROP TABLE vectorstore_documents; --": {"$gt": "x"}}'],
        ["--filter", '{"kind": {"$like": "%\' OR 1=1 --"}}'],
    ],
    ids=["where-value", "filter-key", "like-pattern"],
)
def test_sql_in_filter_keys_and_values_is_data(loaded: URL, args: list[str]) -> None:
    before = fingerprint(loaded)
    done = cli(loaded, *SEARCH, *args, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # matched literally: no row has that key or value
    assert fingerprint(loaded) == before


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "a fish in a dish", "id": "f"}\n{"text": "a frog on a log"}\n')
    return path


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--text-column", "body"], "body"),
        (["--id-column", "nope"], "nope"),
        (["--metadata-column", "meta"], "meta"),
        (["--embedding-column", "vec"], "vec"),
    ],
    ids=["text-column", "id-column", "metadata-column", "embedding-column"],
)
def test_bad_ingest_input_is_one_line_and_changes_nothing(
    loaded: URL, jsonl: Path, args: list[str], needle: str
) -> None:
    before = fingerprint(loaded)
    assert_one_line(cli(loaded, "ingest", str(jsonl), "-c", "pets", *args), 1, needle)
    assert fingerprint(loaded) == before


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.csv"])
def test_ingest_of_an_empty_file_is_a_no_op(loaded: URL, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("")
    before = fingerprint(loaded)
    done = cli(loaded, "ingest", str(path), "-c", "pets")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 rows")
    assert fingerprint(loaded) == before


@pytest.mark.parametrize("name", ["missing.jsonl", "missing.parquet", "."])
def test_ingest_of_a_missing_file_is_one_line(loaded: URL, tmp_path: Path, name: str) -> None:
    before = fingerprint(loaded)
    assert_one_line(cli(loaded, "ingest", str(tmp_path / name), "-c", SQL), 1)
    assert fingerprint(loaded) == before


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.jsonl", '{"text": "fine"}\n{"text": \n'),
        ("open-quote.csv", 'text\n"never closed\n'),
        ("garbage.parquet", "not a parquet file"),
        ("binary.csv", "text\n\udcff\udcfe\n"),
    ],
)
def test_ingest_of_a_malformed_file_is_one_line(
    loaded: URL, tmp_path: Path, name: str, content: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    before = fingerprint(loaded)
    assert_one_line(cli(loaded, "ingest", str(path), "-c", "pets"), 1, name)
    assert fingerprint(loaded) == before


def test_a_sql_laden_collection_name_is_stored_as_data(loaded: URL, jsonl: Path) -> None:
    name = "x'); DROP TABLE vectorstore_documents; --"
    done = cli(loaded, "ingest", str(jsonl), "-c", name, "--embedder", "hashing")
    try:
        assert done.returncode == 0, done.stderr
        engine = create_engine(loaded, poolclass=NullPool)
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT count(*) FROM vectorstore_documents d JOIN vectorstore_collections c "
                    "ON c.id = d.collection_id WHERE c.name = :n"
                ),
                {"n": name},
            ).scalar_one()
        engine.dispose()
        assert rows == 2  # the table is there and holds the two documents
    finally:
        engine = create_engine(loaded, poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM vectorstore_collections WHERE name = :n"), {"n": name})
        engine.dispose()


@pytest.mark.parametrize(
    "name", [SQL, "vectorstore_documents_pkey", 'x" CASCADE; DROP TABLE vectorstore_documents']
)
def test_index_drop_of_a_hostile_name_is_one_line(loaded: URL, name: str) -> None:
    before = fingerprint(loaded)
    assert_one_line(cli(loaded, "index", "drop", name), 1)
    assert fingerprint(loaded) == before


@pytest.fixture(scope="module")
def down() -> Iterator[str]:
    """The URL of a server that is not there (an empty socket directory), with a password."""
    closed = Path(tempfile.mkdtemp(prefix="vs-down-", dir="/tmp"))
    yield f"postgresql://postgres:s3cret-pw@/vectorstore?host={closed}"
    shutil.rmtree(closed, ignore_errors=True)


@pytest.mark.parametrize(
    "args",
    [
        ["search", "a cat", "-c", "pets"],
        ["stats"],
        ["export", "/nonexistent/out.parquet", "-c", "pets"],
        ["index", "drop", "some_index"],
        ["ingest", "JSONL", "-c", "pets"],
    ],
    ids=["search", "stats", "export", "index-drop", "ingest"],
)
def test_a_server_that_is_down_is_one_line_without_the_password(
    down: str, jsonl: Path, args: list[str]
) -> None:
    args = [str(jsonl) if a == "JSONL" else a for a in args]
    line = assert_one_line(cli(down, *args), 1)
    assert "s3cret-pw" not in line
