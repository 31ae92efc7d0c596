"""The ``flask vectorstore`` command group of the Flask extension.

``upgrade``, ``current``, ``check``, ``ingest`` and ``stats`` run on the app's
engine and embedder; each is a thin shell over the function the ``vectorstore``
command line uses (``migrate``, ``current_revision``, ``check_schema``,
``ingest``, ``gather_stats``), so the two cannot drift.  A vectorstore error
is one line and exit status 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup

import vectorstore as vs
from vectorstore.cli import stats as cli_stats
from vectorstore.cli._common import size as cli_size
from vectorstore.cli._common import table as cli_table
from vectorstore.schema.migrate import head_revision

from ._flask_state import State, current_state

__all__ = ["cli"]

# -- the `flask vectorstore` command group -------------------------------------------
cli = AppGroup("vectorstore", help="vectorstore's schema, ingest and statistics.")


def _cli_state() -> State:
    return current_state()


def _fail(exc: vs.VectorStoreError) -> click.ClickException:
    return click.ClickException(str(exc))


@cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade_command(revision: str) -> None:
    """Apply vectorstore's migrations (default: up to the latest revision)."""
    state = _cli_state()
    try:
        vs.migrate(state.engine, revision)
        click.echo(f"schema at revision {vs.current_revision(state.engine)}")
    except vs.VectorStoreError as exc:
        raise _fail(exc) from exc


@cli.command("current")
def current_command() -> None:
    """Print the schema revision of the database and the newest one this version ships."""
    state = _cli_state()
    try:
        current = vs.current_revision(state.engine)
    except vs.VectorStoreError as exc:
        raise _fail(exc) from exc
    head = head_revision()
    if current is None:
        click.echo(f"no vectorstore schema (head is {head}); run `flask vectorstore upgrade`")
    else:
        click.echo(f"{current} (head)" if current == head else f"{current} (head is {head})")


@cli.command("check")
def check_command() -> None:
    """Exit 1 unless the database schema matches the models (like `alembic check`)."""
    state = _cli_state()
    try:
        diffs = vs.check_schema(state.engine)
    except vs.VectorStoreError as exc:
        raise _fail(exc) from exc
    if diffs:
        for diff in diffs:
            click.echo(f"drift: {diff}", err=True)
        raise click.ClickException(f"{len(diffs)} difference(s) between models and database")
    click.echo("schema matches the models")


@cli.command("ingest")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--collection", "-c", default=None, help="collection (default: the app's)")
@click.option("--text-column", default="text", show_default=True)
@click.option("--id-column", default=None, help="column holding the external id")
@click.option("--metadata-columns", default="", help="columns stored as metadata, comma separated")
@click.option(
    "--on-conflict", type=click.Choice(["error", "skip", "update"]), default="skip",
    show_default=True,
)  # fmt: skip
def ingest_command(
    path: Path,
    collection: str | None,
    text_column: str,
    id_column: str | None,
    metadata_columns: str,
    on_conflict: str,
) -> None:
    """Load a parquet, CSV or JSONL file (texts the collection stores already are skipped)."""
    if path.suffix.lower() not in (".parquet", ".csv", ".jsonl", ".ndjson"):
        raise click.ClickException(f"{path}: expected a .parquet, .csv, .jsonl or .ndjson file")
    if not path.is_file():
        raise click.ClickException(f"{path}: no such file")
    columns: dict[str, Any] = {"text_column": text_column}
    if id_column:
        columns["id_column"] = id_column
    meta = [c.strip() for c in metadata_columns.split(",") if c.strip()]
    if meta:
        columns["metadata_columns"] = meta
    state = _cli_state()
    repo: vs.DocumentRepository[Any] = vs.DocumentRepository.standalone(
        state.engine, collection=collection or state.collection, embedder=state.embedder,
        model=state.model,
    )  # fmt: skip
    try:
        result = vs.ingest(path, repository=repo, on_conflict=on_conflict, **columns)  # type: ignore[arg-type]
    except vs.VectorStoreError as exc:
        raise _fail(exc) from exc
    click.echo(
        f"{result.rows} rows: {result.inserted} inserted, {result.skipped} skipped, "
        f"{result.updated} updated, {result.known} already stored; embedded {result.embedded}"
    )


@cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
def stats_command(as_json: bool) -> None:
    """Collections, rows, index sizes, pgvector version (as `vectorstore stats`)."""
    state = _cli_state()
    try:
        stats = cli_stats.gather_stats(state.engine)
    except vs.VectorStoreError as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps(stats, indent=2, default=str))
        return
    click.echo(
        f"server:    PostgreSQL {stats['server_version']}, pgvector {stats['pgvector_version']}"
    )
    click.echo(f"schema:    {stats['schema_revision'] or 'not migrated'}")
    click.echo(f"documents: {stats['documents']} rows, table {cli_size(stats['table_bytes'])}")
    rows = [
        (c["name"], c["embedding_model"], c["dimension"], c["rows"]) for c in stats["collections"]
    ]
    click.echo(
        cli_table(["collection", "model", "dim", "rows"], rows) if rows else "no collections"
    )
