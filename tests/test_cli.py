"""The ``vectorstore`` command, run through its real entry points as a subprocess.

Every command is pointed at this test's own database with ``--database-url`` or
``VECTORSTORE_DATABASE_URL``; ``db start|stop|status|url`` use a dedicated data
directory (``VECTORSTORE_DATA_DIR``), never the user's default one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine
from sqlalchemy.orm import Session

import vectorstore as vs
from tests.conftest import table_count
from vectorstore.schema.migrate import head_revision

SCRIPT = Path(sys.executable).with_name("vectorstore")


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECTORSTORE_")}
    # Warnings a user would see are errors.  ResourceWarning is hidden from users by
    # default; pipeline.ingest leaves pandas' chunked CSV reader to the GC when a row
    # fails validation (reported to its owner), so it is not turned into an error here.
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONWARNINGS="error,ignore::ResourceWarning")  # fmt: skip
    env.update(extra)
    return env


def run(
    *args: str, url: URL | None = None, env: dict[str, str] | None = None, module: bool = False
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "vectorstore"] if module else [str(SCRIPT)]
    if url is not None:
        argv += ["--database-url", url.render_as_string(hide_password=False)]
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, env=env or cli_env(), timeout=300
    )


def assert_user_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 1, one `error:` line on stderr, no traceback."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture
def loaded(engine: Engine, db_url: URL) -> URL:
    """The test database with a small committed collection, 'pets', embedded by hashing."""
    with Session(engine) as session:
        repo = vs.DocumentRepository(
            session, collection="pets", embedder=vs.HashingTestEmbedder()
        )
        repo.bulk_add(
            [
                {"text": "the cat sleeps on the mat", "external_id": "c1",
                 "metadata": {"kind": "cat", "age": 3}},
                {"text": "the dog barks at the mailman", "external_id": "d1",
                 "metadata": {"kind": "dog", "age": 5}},
                {"text": "a kitten and a cat play", "external_id": "c2",
                 "metadata": {"kind": "cat", "age": 1}},
            ]
        )  # fmt: skip
        session.commit()
    return db_url


# -- help ------------------------------------------------------------------------------
COMMANDS = [
    [], ["db"], ["db", "start"], ["db", "stop"], ["db", "status"], ["db", "url"],
    ["db", "upgrade"], ["db", "downgrade"], ["db", "current"], ["ingest"], ["search"],
    ["stats"], ["index"], ["index", "create"], ["index", "drop"], ["export"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_every_command_has_help(command: list[str]) -> None:
    done = run(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: vectorstore {' '.join(command)}".rstrip())


def test_python_dash_m_is_the_same_command() -> None:
    done = run("--help", module=True)
    assert done.returncode == 0
    assert "usage: vectorstore" in done.stdout
    for name in ("db", "ingest", "search", "stats", "index", "export"):
        assert name in done.stdout


def test_no_command_is_a_usage_error() -> None:
    done = run()
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


# -- db upgrade / downgrade / current ---------------------------------------------------
def test_db_current_downgrade_upgrade_round_trip(db_url: URL) -> None:
    done = run("db", "current", url=db_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{head_revision()} (head)"

    done = run("db", "downgrade", url=db_url)
    assert done.returncode == 0, done.stderr
    assert vs.current_revision(db_url) is None

    done = run("db", "current", url=db_url)
    assert done.returncode == 3
    assert "vectorstore db upgrade" in done.stdout

    # The environment variable selects the server as well as --database-url does.
    env = cli_env(VECTORSTORE_DATABASE_URL=db_url.render_as_string(hide_password=False))
    done = run("db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    assert head_revision() in done.stdout
    assert vs.current_revision(db_url) == head_revision()


def test_db_upgrade_to_an_unknown_revision_is_one_line(db_url: URL) -> None:
    done = run("db", "upgrade", "nosuchrev", url=db_url)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr


# -- db start / status / url / stop on a dedicated data directory ------------------------
@pytest.fixture
def data_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="vs-cli-", dir="/tmp"))
    root.chmod(0o755)  # as root, the server's OS user must be able to enter it
    try:
        yield root / "pgdata"
    finally:
        server = vs.EmbeddedServer(root / "pgdata")
        if server.status().running:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_db_start_status_url_stop(data_dir: Path) -> None:
    env = cli_env(VECTORSTORE_DATA_DIR=str(data_dir))
    done = run("db", "status", env=env)
    assert done.returncode == 3
    assert "running:        no" in done.stdout
    assert str(data_dir) in done.stdout

    done = run("db", "start", env=env)
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url.startswith("postgresql+psycopg2://postgres@/vectorstore?host=")

    done = run("db", "status", env=env)
    assert done.returncode == 0
    assert "running:        yes (pid" in done.stdout

    assert run("db", "url", env=env).stdout.strip() == url
    # The URL it prints works: migrate through it.
    done = run("--database-url", url, "db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr

    done = run("db", "start", env=env)
    assert done.returncode == 0
    assert "already running" in done.stderr

    done = run("db", "stop", env=env)
    assert done.returncode == 0
    assert "stopped" in done.stdout
    assert not vs.EmbeddedServer(data_dir).status().running
    assert "was not running" in run("db", "stop", env=env).stdout


# -- stats -----------------------------------------------------------------------------
def test_stats_reports_collections_rows_indexes_and_pgvector(loaded: URL) -> None:
    done = run("stats", url=loaded)
    assert done.returncode == 0, done.stderr
    assert "pgvector 0." in done.stdout
    assert "pets" in done.stdout
    assert "ix_vectorstore_documents_embedding_hnsw" in done.stdout

    stats = json.loads(run("stats", "--json", url=loaded).stdout)
    assert stats["documents"] == 3
    assert stats["schema_revision"] == head_revision()
    [pets] = stats["collections"]
    assert (pets["name"], pets["rows"], pets["dimension"]) == ("pets", 3, 384)
    methods = {i["name"]: i["method"] for i in stats["indexes"]}
    assert methods["ix_vectorstore_documents_embedding_hnsw"] == "hnsw"
    assert all(i["bytes"] > 0 for i in stats["indexes"])


def test_stats_on_an_unmigrated_database_says_so(db_url: URL) -> None:
    vs.downgrade(db_url)
    done = run("stats", url=db_url)
    assert done.returncode == 0, done.stderr
    assert "not migrated" in done.stdout


# -- search ----------------------------------------------------------------------------
def test_search_prints_a_table_and_json(loaded: URL) -> None:
    done = run("search", "cat on the mat", "-c", "pets", "-k", "2", url=loaded)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].split() == ["#", "score", "id", "external_id", "metadata", "text"]
    assert len(lines) == 4  # header, rule, two hits
    assert "the cat sleeps on the mat" in lines[2]

    hits = json.loads(run("search", "cat on the mat", "-c", "pets", "--json", url=loaded).stdout)
    assert hits[0]["external_id"] == "c1"
    assert len(hits) == 3
    assert hits[0]["metadata"] == {"kind": "cat", "age": 3}
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]


def test_search_of_a_missing_collection_is_one_line(loaded: URL) -> None:
    done = run("search", "cat", "-c", "nope", url=loaded)
    assert_user_error(done, "no collection named 'nope'")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--filter", "{not json"], "--filter is not valid JSON"),
        (["--filter", "[1, 2]"], "must be a JSON object"),
        (["--where", "novalue"], "--where expects key=value"),
        (["--where", "kind=cat", "--filter", '{"kind": "dog"}'], "both constrain"),
    ],
)
def test_bad_filters_are_one_line(loaded: URL, args: list[str], needle: str) -> None:
    assert_user_error(run("search", "cat", "-c", "pets", *args, url=loaded), needle)


def test_bad_k_is_a_usage_error(loaded: URL) -> None:
    done = run("search", "cat", "-k", "0", url=loaded)
    assert done.returncode == 2
    assert "positive integer" in done.stderr


# -- the database is down or wrong -------------------------------------------------------
def test_a_server_that_is_down_is_one_line() -> None:
    closed = Path(tempfile.mkdtemp(prefix="vs-nosrv-", dir="/tmp"))
    try:
        url = f"postgresql://postgres@/vectorstore?host={closed}"
        for command in (["stats"], ["db", "current"], ["search", "x"], ["db", "upgrade"]):
            assert_user_error(run("--database-url", url, *command))
    finally:
        shutil.rmtree(closed, ignore_errors=True)


def test_a_url_that_is_not_postgres_is_one_line() -> None:
    done = run("--database-url", "mysql://u@h/db", "stats")
    assert_user_error(done, "PostgreSQL")


# -- index create / drop -----------------------------------------------------------------
def test_index_create_and_drop(loaded: URL) -> None:
    done = run("index", "create", "--method", "hnsw", "--metric", "l2", "--m", "8",
               "--ef-construction", "32", url=loaded)  # fmt: skip
    assert done.returncode == 0, done.stderr
    name = done.stdout.split()[1]
    assert name.startswith("vsx_")
    stats = json.loads(run("stats", "--json", url=loaded).stdout)
    assert {"name": name, "method": "hnsw"}.items() <= next(
        i for i in stats["indexes"] if i["name"] == name
    ).items()

    done = run("index", "create", "--method", "ivfflat", "--lists", "2", "-c", "pets",
               "--name", "pets_ivf", url=loaded)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pets_ivf" in done.stdout

    for index in (name, "pets_ivf"):
        done = run("index", "drop", index, url=loaded)
        assert done.returncode == 0, done.stderr
    names = {i["name"] for i in json.loads(run("stats", "--json", url=loaded).stdout)["indexes"]}
    assert name not in names
    assert "pets_ivf" not in names
    assert_user_error(run("index", "drop", name, url=loaded), "no ANN index named")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--m", "1"], "m must be an integer in [2, 100]"),
        (["--m", "40", "--ef-construction", "50"], "at least 2 * m"),
        (["--method", "ivfflat", "--metric", "l1"], "IVFFlat has no L1"),
        (["--name", "Bad-Name"], "must be lowercase"),
        (["-c", "nope"], "no collection named 'nope'"),
    ],
)
def test_bad_index_options_are_one_line(loaded: URL, args: list[str], needle: str) -> None:
    assert_user_error(run("index", "create", *args, url=loaded), needle)


def test_search_filters_and_hybrid(loaded: URL) -> None:
    def ids(*args: str) -> list[str]:
        done = run("search", "cat", "-c", "pets", "--json", *args, url=loaded)
        assert done.returncode == 0, done.stderr
        return [h["external_id"] for h in json.loads(done.stdout)]

    assert sorted(ids("--where", "kind=cat")) == ["c1", "c2"]
    assert ids("--where", "kind=cat", "--where", "age=1") == ["c2"]  # JSON-typed value
    assert sorted(ids("--filter", '{"age": {"$gte": 3}}')) == ["c1", "d1"]
    assert ids("--where", "kind=fish") == []
    hybrid = ids("--hybrid")
    assert sorted(hybrid) == ["c1", "c2", "d1"]
    assert hybrid[-1] == "d1"  # no word in common with the query: ranked last
    assert_user_error(
        run("search", "cat", "-c", "pets", "--filter", '{"age": {"$nope": 1}}', url=loaded),
        "$nope",
    )


# -- ingest / export ---------------------------------------------------------------------
def test_ingest_csv_then_rerun_embeds_nothing(db_url: URL, tmp_path: Path) -> None:
    source = tmp_path / "notes.csv"
    source.write_text("id,body,lang\nn1,the cat sleeps,en\nn2,le chat dort,fr\nn3,dogs bark,en\n")
    args = ["ingest", str(source), "-c", "notes", "--embedder", "hashing", "--text-column", "body",
            "--id-column", "id", "--metadata-columns", "lang"]  # fmt: skip
    done = run(*args, url=db_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("3 rows: 3 inserted")
    assert "embedded 3" in done.stdout

    again = run(*args, url=db_url)
    assert again.returncode == 0, again.stderr
    assert "0 inserted" in again.stdout
    assert "3 already stored; embedded 0" in again.stdout

    hits = json.loads(run("search", "cat", "-c", "notes", "--where", "lang=en", "--json",
                          url=db_url).stdout)  # fmt: skip
    assert hits[0]["external_id"] == "n1"
    assert {h["metadata"]["lang"] for h in hits} == {"en"}


def test_export_then_ingest_the_parquet_keeps_vectors(db_url: URL, tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text("\n".join(json.dumps({"text": f"document {i}", "external_id": f"d{i}",
                                            "metadata": {"n": i}}) for i in range(5)))  # fmt: skip
    done = run("ingest", str(source), "-c", "a", "--embedder", "hashing", url=db_url)
    assert done.returncode == 0

    out = tmp_path / "a.parquet"
    done = run("export", str(out), "-c", "a", url=db_url)
    assert done.returncode == 0, done.stderr
    assert "wrote 5 rows" in done.stdout
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert table.num_rows == 5
    assert sorted(table.column("text").to_pylist()) == [f"document {i}" for i in range(5)]

    # The exported vectors come back as they are: nothing is embedded.
    done = run("ingest", str(out), "-c", "b", "--embedder", "hashing", url=db_url)
    assert done.returncode == 0, done.stderr
    assert "5 inserted" in done.stdout
    assert "embedded 0" in done.stdout


@pytest.mark.parametrize(
    ("make", "args", "needle"),
    [
        (None, ["missing.csv"], "no such file"),
        ("notes.txt", ["notes.txt"], "expected a .parquet"),
        ("notes.csv", ["notes.csv", "--text-column", "nope"], "no text column 'nope'"),
        ("notes.csv", ["notes.csv", "--metadata-columns", "nope"], "no metadata column 'nope'"),
        ("notes.csv", ["notes.csv", "--on-conflict", "error", "--id-column", "text"], None),
    ],
)
def test_ingest_mistakes_are_one_line(
    db_url: URL, engine: Engine, tmp_path: Path, make: str | None, args: list[str],
    needle: str | None,
) -> None:  # fmt: skip
    if make:
        (tmp_path / make).write_text("text\nsame text\nsame text\n")
    done = run("ingest", *[str(tmp_path / a) if a == args[0] else a for a in args],
               "--embedder", "hashing", url=db_url)  # fmt: skip
    if needle is None:  # a duplicate external id within the file, policy "error"
        assert done.returncode == 1, done.stdout
        assert "Traceback" not in done.stderr
    else:
        assert_user_error(done, needle)
    assert table_count(engine) == 0


def test_ingest_refuses_a_different_model(db_url: URL, tmp_path: Path) -> None:
    source = tmp_path / "n.csv"
    source.write_text("text\nhello\n")
    first = run("ingest", str(source), "-c", "m", "--embedder", "hashing", url=db_url)
    assert first.returncode == 0
    done = run("ingest", str(source), "-c", "m", "--embedder",
               "sentence-transformers/all-MiniLM-L6-v2", url=db_url)  # fmt: skip
    assert_user_error(done, "refusing to mix")


def test_export_mistakes_are_one_line(db_url: URL, tmp_path: Path) -> None:
    assert_user_error(run("export", str(tmp_path / "x.parquet"), "-c", "nope", url=db_url),
                      "no collection named 'nope'")  # fmt: skip
    assert_user_error(run("export", str(tmp_path / "no" / "x.parquet"), url=db_url),
                      "no such folder")  # fmt: skip
    assert_user_error(run("export", str(tmp_path / "x.csv"), url=db_url), ".parquet")


def test_ingest_progress_bar(db_url: URL, tmp_path: Path) -> None:
    source = tmp_path / "n.jsonl"
    source.write_text("\n".join(json.dumps({"text": f"line {i}"}) for i in range(7)))
    shown = run("ingest", str(source), "--embedder", "hashing", "--progress", url=db_url)
    assert shown.returncode == 0, shown.stderr
    # tqdm's bar (by default shown only on a terminal), with the file's line count as
    # its total and the phases named.
    assert "ingest [writing]: 100%" in shown.stderr
    assert "7/7" in shown.stderr
    quiet = run("ingest", str(source), "-c", "q", "--embedder", "hashing", url=db_url)
    assert quiet.returncode == 0
    assert quiet.stderr == ""
