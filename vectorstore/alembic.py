"""alembic hooks for an app's own ``env.py`` (its own history beside vectorstore's).

vectorstore migrates its own tables with its own history and version table
(``vectorstore_alembic_version``); an app migrates its tables, including its
own :class:`~vectorstore.DocumentMixin` tables, with alembic's default
``alembic_version``.  In the app's ``env.py``::

    from alembic import context
    import vectorstore.alembic

    with engine.connect() as connection:
        vectorstore.alembic.configure(context, connection=connection,
                                      target_metadata=AppBase.metadata)
        with context.begin_transaction():
            context.run_migrations()

What the hooks do:

* :func:`render_item`: alembic renders pgvector's types as
  ``pgvector.sqlalchemy.vector.VECTOR(dim=384)`` without importing them, and
  ``alembic upgrade`` then fails with ``NameError: name 'pgvector' is not
  defined``.  This renders ``Vector(384)`` (also ``HALFVEC``, ``SPARSEVEC``,
  ``BIT``) and adds ``from pgvector.sqlalchemy import Vector`` to the revision.
* :func:`include_object`: leaves vectorstore's own tables (and their
  indexes) out of the app's autogenerate and ``alembic check``, so the app
  never writes a revision that drops them, and ignores the per-collection
  partial indexes (``vsx_*``) that ``repo.create_index`` makes at run time.
* :func:`configure`: ``context.configure`` with both hooks (chained with the
  app's own, if it passes any) and ``compare_type=True``.
* :func:`escape_url` / :func:`set_url`: alembic's ``Config.set_main_option``
  interpolates ``%`` (ConfigParser), and a URL with a percent-encoded part
  (the embedded server's socket folder: ``?host=%2Ftmp%2F...``, a password
  with ``%40``) is refused; these double the ``%`` so the URL comes back
  unchanged from ``get_main_option``.

Operations for an app's revisions (each takes alembic's ``op`` and runs in
the revision's transaction): :func:`create_tenant`, :func:`detach_tenant`,
:func:`attach_tenant` and :func:`drop_tenant` for a model partitioned by
collection (``partition_by_collection = True``; see ``docs/tenants.md``),
:func:`enable_row_level_security` / :func:`disable_row_level_security` for
the tenant policy (:mod:`vectorstore.schema.rls`)::

    def upgrade() -> None:
        op.create_table("tenant_docs", ..., postgresql_partition_by="LIST (collection_id)")
        vectorstore.alembic.create_tenant(op, "tenant-42", model=TenantDoc)
        vectorstore.alembic.enable_row_level_security(op, TenantDoc)

Run vectorstore's migrations before the app's (``vectorstore db upgrade``, or
``vectorstore.migrate(url)`` in the deploy script), never from inside the
app's ``env.py``: alembic runs one environment per command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import URL

from vectorstore.results import CollectionInfo
from vectorstore.schema import alembic_hooks, partitions, rls, tenants
from vectorstore.schema.migrate import VERSION_TABLE

__all__ = [
    "VERSION_TABLE",
    "attach_tenant",
    "configure",
    "create_tenant",
    "detach_tenant",
    "disable_row_level_security",
    "drop_tenant",
    "enable_row_level_security",
    "escape_url",
    "include_object",
    "render_item",
    "set_url",
]

IncludeObject = Callable[[Any, "str | None", str, bool, Any], bool]
RenderItem = Callable[[str, Any, Any], "str | bool"]

_OURS = alembic_hooks.OUR_TABLE_PREFIX
_RUNTIME_INDEX_PREFIX = "vsx_"
_RUNTIME_PREFIXES = (_RUNTIME_INDEX_PREFIX, partitions.PARTITION_PREFIX)


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """alembic's ``render_item`` hook: pgvector types rendered importable (see module docs)."""
    return alembic_hooks.render_item(type_, obj, autogen_context)


def _table_name(obj: Any, name: str | None, type_: str) -> str:
    if type_ == "table":
        return str(name or "")
    table = getattr(obj, "table", None)
    return str(getattr(table, "name", "") or "")


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """alembic's ``include_object`` hook for an app's history (see module docs).

    Leaves out vectorstore's own tables (``vectorstore_*``, its version table
    included) and everything on them, run-time per-collection indexes, and
    the tenants' partitions (``vsp_*``) with their indexes.
    """
    table_name = _table_name(obj, name, type_)
    if table_name.startswith(_OURS):
        return False
    if reflected and compare_to is None and table_name.startswith(partitions.PARTITION_PREFIX):
        return False
    return not (
        type_ == "index"
        and reflected
        and compare_to is None
        and str(name or "").startswith(_RUNTIME_PREFIXES)
    )


def configure(
    context: Any,
    *,
    target_metadata: Any,
    include_object: IncludeObject | None = None,
    render_item: RenderItem | None = None,
    **options: Any,
) -> None:
    """``context.configure(...)`` for an app's ``env.py``, with vectorstore's hooks.

    Args:
        context: ``alembic.context``.
        target_metadata: the app's MetaData (its ``DocumentMixin`` tables included).
        include_object: the app's own hook; an object is included when both agree.
        render_item: the app's own hook; asked first, vectorstore's renders
            what it leaves (``False``).
        **options: anything else for ``context.configure`` (``connection``,
            ``url``, ``version_table``, ...); ``compare_type`` defaults to True.
    """
    theirs_include = include_object
    theirs_render = render_item

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if not _include(obj, name, type_, reflected, compare_to):
            return False
        return theirs_include is None or theirs_include(obj, name, type_, reflected, compare_to)

    def render(type_: str, obj: Any, autogen_context: Any) -> str | bool:
        if theirs_render is not None:
            rendered = theirs_render(type_, obj, autogen_context)
            if rendered is not False:
                return rendered
        return _render(type_, obj, autogen_context)

    options.setdefault("compare_type", True)
    context.configure(
        target_metadata=target_metadata, include_object=include, render_item=render, **options
    )


_include = include_object
_render = render_item


def escape_url(url: str | URL) -> str:
    """``url`` as a string for ``Config.set_main_option`` (password kept, ``%`` doubled)."""
    rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    return rendered.replace("%", "%%")


def set_url(config: Any, url: str | URL) -> None:
    """Set ``sqlalchemy.url`` on an alembic ``Config``; ``get_main_option`` returns it unchanged."""
    config.set_main_option("sqlalchemy.url", escape_url(url))


# -- operations for an app's revisions ----------------------------------------------------
def create_tenant(
    op: Any, name: str, *, model: Any, embedding_model: str | None = None
) -> CollectionInfo:
    """Create collection ``name`` and its partition of ``model``'s table (in the revision)."""
    return tenants.create_tenant(op.get_bind(), name, model=model, embedding_model=embedding_model)


def detach_tenant(op: Any, name: str, *, model: Any) -> str:
    """Detach collection ``name``'s partition (rows kept); returns the partition's name."""
    return tenants.detach_tenant(op.get_bind(), name, model=model)


def attach_tenant(op: Any, name: str, *, model: Any) -> str:
    """Attach collection ``name``'s detached partition again; returns its name."""
    return tenants.attach_tenant(op.get_bind(), name, model=model)


def drop_tenant(op: Any, name: str, *, model: Any, missing_ok: bool = False) -> int:
    """Drop collection ``name`` and its partition; returns the documents it held."""
    return tenants.drop_tenant(op.get_bind(), name, model=model, missing_ok=missing_ok)


def enable_row_level_security(op: Any, model: Any, *, force: bool = False) -> None:
    """Row-level security with the tenant policy on ``model``'s table (in the revision)."""
    rls.enable_row_level_security(op.get_bind(), model, force=force)


def disable_row_level_security(op: Any, model: Any) -> None:
    """Drop the tenant policy and disable row-level security on ``model``'s table."""
    rls.disable_row_level_security(op.get_bind(), model)
