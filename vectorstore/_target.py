"""What a call works on: a :class:`Target` (model, collection, embedder) and its :class:`Sessions`.

The repository validates a call's arguments, resolves its collection, builds
a ``Target`` and hands it to the write or the query wing.  A ``Target`` is a
frozen value: the wings read what they need from it and never reach back
into the repository, so the data flows one way (repository -> wing -> schema).

:class:`Sessions` is the one place that knows who owns the transaction:

* bound to the host app's Session, a write runs in a SAVEPOINT of it and a
  read runs in it as it is; nothing is ever committed;
* standalone (a ``sessionmaker`` of our own), every call is its own
  transaction, committed when the call ends;
* with a read engine (a replica), reads run in short transactions of their
  own on it, and writes go wherever the rest of the configuration sends them.

It also owns the one safe retry of a read (:meth:`Sessions.retry_read`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine, Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from .embedders import Embedder
from .errors import ConnectionLostError, db_errors
from .models import DocumentMixin, embedding_dimension
from .results import CollectionInfo

__all__ = ["CollectionSpec", "Sessions", "Target"]

DocT = TypeVar("DocT", bound=DocumentMixin)
T = TypeVar("T")


@dataclass(frozen=True)
class Sessions:
    """Read and write scopes, and who owns their transactions.

    Attributes:
        session: the host app's Session (None when standalone).
        factory: our own sessionmaker for a standalone repository (None when bound).
        read_factory: a sessionmaker on a read engine (a replica), when one is set.
        label: what error messages say the call was about, e.g. ``collection 'docs'``.
        tenant: a collection id to set as ``vectorstore.tenant`` in every
            transaction (a table with row-level security on; see
            :mod:`vectorstore.schema.rls`); None sets nothing.
    """

    session: Session | None = None
    factory: sessionmaker[Session] | None = None
    read_factory: sessionmaker[Session] | None = None
    label: str = ""
    tenant: int | None = None

    def _scope(self, session: Session) -> Session:
        if self.tenant is not None:
            session.connection().exec_driver_sql(
                f"SELECT set_config('vectorstore.tenant', '{int(self.tenant)}', true)"
            )
        return session

    @property
    def owns_transactions(self) -> bool:
        """True when every write is a transaction of our own (standalone), committed per call."""
        return self.factory is not None

    @property
    def owns_reads(self) -> bool:
        """True when reads run in transactions we open and end (standalone or a read engine)."""
        return self.read_factory is not None or self.factory is not None

    @property
    def write_engine(self) -> Engine:
        """The engine writes go to (a bound Session's bind when the host owns it)."""
        if self.factory is not None:
            return _engine_of(self.factory.kw["bind"])
        assert self.session is not None
        return _engine_of(self.session.get_bind())

    @property
    def read_engine(self) -> Engine | None:
        """The engine of reads we own (session-less fast paths); None inside a host Session."""
        factory = self.read_factory or self.factory
        return None if factory is None else _engine_of(factory.kw["bind"])

    def errors(self, action: str) -> AbstractContextManager[None]:
        """Translate driver errors raised in the block, saying what the call was doing."""
        return db_errors(f"{action} in {self.label}" if self.label else action)

    @contextmanager
    def write(self, action: str) -> Iterator[Session]:
        """A Session to write in: a transaction of our own, or a SAVEPOINT of the host's."""
        with self.errors(action):
            if self.factory is not None:
                with self.factory.begin() as session:
                    yield self._scope(session)
            else:
                assert self.session is not None
                with self.session.begin_nested():
                    yield self._scope(self.session)

    @contextmanager
    def read(self, action: str) -> Iterator[Session]:
        """A Session to read in: a short transaction of our own, or the host's Session."""
        with self.errors(action):
            factory = self.read_factory or self.factory
            if factory is not None:
                with factory.begin() as session:
                    yield self._scope(session)
            else:
                assert self.session is not None
                yield self._scope(self.session)

    def retry_read(self, read: Callable[[], T]) -> T:
        """Run ``read()``; once more if its pooled connection proved dead.

        A pooled connection can die between two calls (``pg_terminate_backend``,
        a server restart, a proxy's idle timeout).  Engines made by
        :func:`vectorstore.make_engine` pre-ping and never hand out such a
        connection; one built without ``pool_pre_ping`` does, and the first
        statement fails.  For a *read* in a transaction we opened, running it
        once more on a fresh connection is safe: nothing was written, the caller
        received no row (``read`` materialises its rows before it returns) and
        the failed transaction held nothing of the caller's.  So the read is
        retried exactly once, and only when we own reads and SQLAlchemy
        recognised a disconnect (``connection_invalidated``) so the retry gets
        another connection.  A read inside the host's Session is never retried:
        the lost connection took the host's transaction with it.  Writes never
        come here: a write whose connection broke may have committed.
        """
        try:
            return read()
        except ConnectionLostError as exc:
            cause = exc.__cause__
            invalidated = isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated
            if not (self.owns_reads and invalidated):
                raise
        return read()


def _engine_of(bind: Any) -> Engine:
    return bind if isinstance(bind, Engine) else bind.engine


#: The model name recorded for a collection created without an embedder or a model name.
UNSPECIFIED_MODEL = "unspecified"


@dataclass(frozen=True)
class CollectionSpec:
    """What a repository asks of its collection.

    Attributes:
        name: the collection's name (validated by the repository).
        create: create it on first use; False makes a missing one an error.
        dimension: the dimension of the document model's embedding column.
        model_label: the document class's name, for messages.
        embedding_model: the model name given explicitly (``embedding_model=``), if any.
        model: the document model; a new collection in a table partitioned by
            collection gets its partition of that table with it.
    """

    name: str
    create: bool
    dimension: int
    model_label: str
    embedding_model: str | None = None
    model: Any = None

    def recorded_model(self, embedder: Embedder | None) -> str:
        """The model name a new collection records: the embedder's, else the explicit one."""
        if embedder is not None:
            return embedder.model_name
        return self.embedding_model or UNSPECIFIED_MODEL


@dataclass(frozen=True)
class Target(Generic[DocT]):
    """One collection of one document table, as a call of a wing sees it.

    Attributes:
        model: the mapped document class.
        collection: the resolved collection (id, name, model, dimension), or
            None for a write into a collection that does not exist yet: the
            write creates it from ``spec`` in its own transaction.
        embedder: the embedder texts without vectors are embedded with (None: vectors only).
        sessions: where and in whose transaction the call runs.
        spec: what the repository asks of its collection (name, create, model name).
        table: ``model``'s table.
        dimension: the dimension of its embedding column.
    """

    model: type[DocT]
    collection: CollectionInfo | None
    embedder: Embedder | None
    sessions: Sessions
    spec: CollectionSpec
    table: Table = field(init=False)
    dimension: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", self.model.__table__)  # type: ignore[attr-defined]
        object.__setattr__(self, "dimension", embedding_dimension(self.model))

    @property
    def collection_id(self) -> int:
        """The resolved collection's id (reads always have one; see ``collection``)."""
        assert self.collection is not None, "the collection is resolved in the write's transaction"
        return self.collection.id
