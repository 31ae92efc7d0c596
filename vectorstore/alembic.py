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

Run vectorstore's migrations before the app's (``vectorstore db upgrade``, or
``vectorstore.migrate(url)`` in the deploy script), never from inside the
app's ``env.py``: alembic runs one environment per command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import URL

from vectorstore.schema import alembic_hooks
from vectorstore.schema.migrate import VERSION_TABLE

__all__ = ["VERSION_TABLE", "configure", "escape_url", "include_object", "render_item", "set_url"]

IncludeObject = Callable[[Any, "str | None", str, bool, Any], bool]
RenderItem = Callable[[str, Any, Any], "str | bool"]

_OURS = alembic_hooks.OUR_TABLE_PREFIX
_RUNTIME_INDEX_PREFIX = "vsx_"


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
    included) and everything on them, and run-time per-collection indexes.
    """
    if _table_name(obj, name, type_).startswith(_OURS):
        return False
    return not (
        type_ == "index"
        and reflected
        and compare_to is None
        and str(name or "").startswith(_RUNTIME_INDEX_PREFIX)
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
