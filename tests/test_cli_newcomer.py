"""The command line as a newcomer meets it: fast help, checks before work, collections, Ctrl-C.

* ``--help`` imports neither SQLAlchemy nor numpy nor torch (the imported
  module set is checked in a fresh interpreter, not the time).
* Every argument and filter is checked before the server is reached or a
  model is loaded (model loads are counted; the server URL points nowhere).
* ``collection list|create|info|rename|drop`` and ``--model pkg.module:Class``
  on each command that touches documents, on both drivers.
* Ctrl-C during an ingest cancels the running COPY: the process exits 130 and
  the database holds nothing of the file.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL, text

import vectorstore as vs
from tests.conftest import table_count
from tests.test_cli import SCRIPT, assert_user_error, cli_env, run
from vectorstore.cli import main

NOWHERE = "postgresql+psycopg2://postgres@/nowhere?host=/nonexistent-socket-dir"


# -- --help is light ---------------------------------------------------------------------
HELP_COMMANDS = [[], ["search"], ["ingest"], ["collection"], ["collection", "drop"],
                 ["stats"], ["index", "create"], ["tune"], ["db", "start"]]  # fmt: skip


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help_imports_nothing_heavy(command: list[str]) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from vectorstore.cli import main
        try:
            main({[*command, "--help"]!r})
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        heavy = {{"sqlalchemy", "numpy", "torch", "pandas", "pyarrow", "tqdm", "psycopg2",
                  "psycopg", "sentence_transformers", "alembic"}}
        loaded = sorted(heavy & {{name.split(".")[0] for name in sys.modules}})
        assert not loaded, loaded
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=cli_env(), timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "usage: vectorstore" in done.stdout


# -- everything is checked before any model or server work --------------------------------
@pytest.fixture
def model_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SentenceTransformerEmbedder load, counted (and refused: no torch in these tests)."""
    loads: list[str] = []

    def counting_load(self: vs.SentenceTransformerEmbedder) -> Any:
        loads.append(self.model_name)
        raise vs.EmbedderError("model loading is disabled in this test")

    monkeypatch.setattr(vs.SentenceTransformerEmbedder, "_load", counting_load)
    return loads


BAD_BEFORE_WORK = [
    (["search", "q", "--filter", '{"stars": {"$gtt": 3}}'], "$gtt"),
    (["search", "q", "--where", "=3"], "--where expects key=value"),
    (["search", "q", "--filter", "[1]"], "must be a JSON object"),
    (["search", "q", "--filter", '{"a": {"$in": 3}}'], "$in"),
    (["search", "q", "--model", "no_such_module_xyz:Doc"], "cannot import"),
    (["search", "q", "--model", "all-MiniLM-L6-v2"], "--embedder"),
    (["search", "q", "--model", "vectorstore.models:Collection"], "not a mapped DocumentMixin"),
    (["ingest", "missing.csv"], "no such file"),
    (["ingest", "README.md"], "expected a"),
    (["stats", "--model", "os:path"], "not a mapped DocumentMixin"),
    (["collection", "list", "--model", "vectorstore:Nope"], "has no 'Nope'"),
    (["collection", "drop", "x"], "--yes"),
    (["export", "out.csv"], ".parquet"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD_BEFORE_WORK, ids=lambda v: str(v)[:40])
def test_mistakes_are_reported_before_the_server_or_a_model(
    argv: list[str], needle: str, model_loads: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # The URL points nowhere: reaching for the server would be a connection error instead.
    status = main(["--database-url", NOWHERE, *argv])
    err = capsys.readouterr().err
    assert status == 1, err
    assert needle in err
    assert "connection" not in err.lower()
    assert model_loads == []


def test_a_valid_search_gets_as_far_as_loading_the_model(
    db_url: URL, model_loads: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The counter counts: valid arguments reach the model (once), and its error is one line."""
    vs.create_collection(db_url, "minilm")
    url = db_url.render_as_string(hide_password=False)
    status = main(["--database-url", url, "search", "q", "-c", "minilm",
                   "--filter", '{"stars": {"$gt": 3}}'])  # fmt: skip
    assert status == 1
    assert model_loads == [vs.DEFAULT_MODEL_NAME]
    assert "model loading is disabled" in capsys.readouterr().err


def test_usage_errors_exit_2_before_anything(model_loads: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--database-url", NOWHERE, "search", "q", "-k", "0"])
    assert exc.value.code == 2
    assert model_loads == []


# -- collection commands -------------------------------------------------------------------
def _seed(url: URL, name: str, n: int) -> vs.DocumentRepository[vs.Document]:
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository.standalone(
        url, collection=name, embedder=vs.HashingTestEmbedder()
    )
    repo.bulk_add([{"text": f"{name} note {i}", "external_id": str(i)} for i in range(n)])
    return repo


def test_collection_commands_round_trip(any_driver_url: URL) -> None:
    url = any_driver_url
    keep = _seed(url, "keep", 3)
    gone = _seed(url, "gone", 5)
    own_index = gone.create_index(vs.IndexSpec(method="hnsw", per_collection=True))
    keep.close()
    gone.close()

    listed = run("collection", "list", "--json", url=url)
    assert listed.returncode == 0, listed.stderr
    assert {c["name"]: c["rows"] for c in json.loads(listed.stdout)} == {"gone": 5, "keep": 3}
    info = json.loads(run("collection", "info", "gone", "--json", url=url).stdout)
    assert info["indexes"] == [own_index]

    created = run("collection", "create", "empty", "--embedder", "hashing-384", url=url)
    assert created.returncode == 0, created.stderr
    assert_user_error(run("collection", "create", "empty", url=url), "exists already")
    assert vs.collection_info(url, "empty").embedding_model == "hashing-384"

    assert_user_error(run("collection", "rename", "keep", "gone", url=url), "exists already")
    renamed = run("collection", "rename", "keep", "kept", url=url)
    assert renamed.returncode == 0, renamed.stderr
    assert vs.collection_info(url, "kept").rows == 3

    assert_user_error(run("collection", "drop", "gone", url=url), "--yes")
    assert vs.collection_info(url, "gone").rows == 5  # refused: unchanged
    dropped = run("collection", "drop", "gone", "--yes", url=url)
    assert dropped.returncode == 0, dropped.stderr
    assert "5 documents deleted" in dropped.stdout
    assert [c.name for c in vs.list_collections(url)] == ["empty", "kept"]
    engine = vs.make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass(:i)"), {"i": own_index}).scalar() is None
    engine.dispose()
    assert_user_error(run("collection", "drop", "gone", "--yes", url=url), "no collection")
    assert_user_error(run("collection", "info", "gone", url=url), "no collection")


def test_drop_collection_in_a_session_is_the_callers_transaction(engine: Any) -> None:
    from sqlalchemy.orm import Session

    _seed(engine.url, "c", 4).close()
    with Session(engine) as session:
        assert vs.drop_collection(session, "c") == 4
        assert vs.list_collections(session) == []
        session.rollback()
    assert vs.collection_info(engine, "c").rows == 4
    assert table_count(engine) == 4


def test_collection_functions_refuse_bad_input(engine: Any) -> None:
    with pytest.raises(vs.ValidationError):
        vs.create_collection(engine, "")
    with pytest.raises(vs.DimensionMismatchError):
        vs.create_collection(engine, "x", dimension=768)
    with pytest.raises(vs.ValidationError):
        vs.list_collections(engine, model=vs.Collection)
    with pytest.raises(vs.CollectionNotFoundError):
        vs.rename_collection(engine, "nope", "other")
    assert vs.list_collections(engine) == []


# -- --model: an app's own DocumentMixin table ----------------------------------------------
APP_MODELS = '''
from sqlalchemy.orm import DeclarativeBase

import vectorstore as vs


class AppBase(DeclarativeBase):
    pass


class NoteDoc(vs.DocumentMixin, AppBase):
    __tablename__ = "app_note_docs"
'''


def test_model_option_reaches_an_apps_own_table(any_driver_url: URL, tmp_path: Path) -> None:
    url = any_driver_url
    (tmp_path / "app_models_cli.py").write_text(APP_MODELS)
    sys.path.insert(0, str(tmp_path))
    try:
        import app_models_cli  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    engine = vs.make_engine(url)
    app_models_cli.AppBase.metadata.create_all(engine)
    source = tmp_path / "notes.csv"
    source.write_text("text,kind\n" + "".join(f"note about cats {i},cat\n" for i in range(13)))
    model = ["--model", "app_models_cli:NoteDoc"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(SCRIPT), "--database-url", url.render_as_string(hide_password=False), *args]
        return subprocess.run(argv, capture_output=True, text=True, env=cli_env(),
                              cwd=tmp_path, timeout=300)  # fmt: skip

    done = cli("ingest", str(source), "-c", "notes", "--embedder", "hashing",
               "--metadata-columns", "kind", *model)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert table_count(engine, "app_note_docs") == 13
    assert table_count(engine) == 0  # nothing in vectorstore's own table

    stats = json.loads(cli("stats", "--json", *model).stdout)
    assert [(c["name"], c["rows"]) for c in stats["collections"]] == [("notes", 13)]
    listed = json.loads(cli("collection", "list", "--json", *model).stdout)
    assert listed[0]["rows"] == 13
    hits = cli("search", "cats", "-c", "notes", "--where", "kind=cat", "--json", "-k", "3", *model)
    assert hits.returncode == 0, hits.stderr
    assert len(json.loads(hits.stdout)) == 3
    # without --model the default table is searched: no rows there, and it says so
    assert cli("search", "cats", "-c", "notes", "--json").stdout.strip() == "[]"
    plain = cli("search", "cats", "-c", "notes")
    assert plain.stdout.strip() == "no results"
    assert "has no documents in vectorstore_documents" in plain.stderr
    assert "--model pkg.module:Class" in plain.stderr
    dropped = cli("collection", "drop", "notes", "--yes", *model)
    assert dropped.returncode == 0, dropped.stderr
    assert table_count(engine, "app_note_docs") == 0
    engine.dispose()


# -- ingest --rebuild-index -------------------------------------------------------------------
def test_a_big_ingest_into_an_indexed_table_rebuilds_the_index(db_url: URL, tmp_path: Path) -> None:
    source = tmp_path / "big.jsonl"
    source.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(10_000)))
    done = run("ingest", str(source), "-c", "big", "--embedder", "hashing", url=db_url)
    assert done.returncode == 0, done.stderr
    assert "rebuilt after the load" in done.stderr
    assert "10,000 inserted" in done.stdout
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps({"text": "one more"}) + "\n")
    done = run("ingest", str(small), "-c", "big", "--embedder", "hashing", url=db_url)
    assert done.returncode == 0, done.stderr
    assert "rebuilt" not in done.stderr
    with vs.DocumentRepository.standalone(db_url, collection="big") as repo:
        assert repo.count() == 10_001
        assert [ix.method for ix in repo.list_indexes()] == ["hnsw"]  # rebuilt, still there


# -- Ctrl-C -----------------------------------------------------------------------------------
def _read_until(process: subprocess.Popen[bytes], needle: bytes, limit_s: float) -> bytes:
    """stderr of ``process`` until ``needle`` appears (the synchronisation: its own output)."""
    seen = b""
    deadline = time.monotonic() + limit_s
    assert process.stderr is not None
    while needle not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"never printed {needle!r}: {seen[-2000:]!r}"
        ready, _, _ = select.select([process.stderr], [], [], remaining)
        if ready:
            chunk = os.read(process.stderr.fileno(), 65536)
            assert chunk, f"exited before printing {needle!r}: {seen[-2000:]!r}"
            seen += chunk
    return seen


def test_ctrl_c_cancels_the_running_copy_and_writes_nothing(
    any_driver_url: URL, tmp_path: Path
) -> None:
    source = tmp_path / "slow.csv"
    # Into the table's HNSW index row by row (--no-rebuild-index): one COPY of 20,000
    # rows that runs for minutes unless it is cancelled.
    source.write_text("text\n" + "".join(f"a slow row number {i}\n" for i in range(20_000)))
    argv = [str(SCRIPT), "--database-url", any_driver_url.render_as_string(hide_password=False),
            "ingest", str(source), "-c", "slow", "--embedder", "hashing", "--progress",
            "--no-rebuild-index", "--batch-size", "20000"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=cli_env())  # fmt: skip
    try:
        _read_until(process, b"[writing]", 120)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err.decode()[-2000:]
    assert b"interrupted: cancelling the running statement" in err
    assert b"Traceback" not in err
    engine = vs.make_engine(any_driver_url)
    assert table_count(engine) == 0
    assert vs.list_collections(engine) == []  # the first write failed: no collection either
    engine.dispose()
