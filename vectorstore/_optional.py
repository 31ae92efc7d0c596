"""Optional dependencies (the package's extras): import one, or say which extra to install.

The core (``add``, ``bulk_add`` of arrays and records, ``nearest``, the
migrations) needs SQLAlchemy, pgvector, numpy and one PostgreSQL driver.  Other
features need an extra; each imports it here, at the moment it is needed, so a
missing one is a :class:`~vectorstore.errors.MissingDependencyError` naming the
extra to install instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["DRIVER_EXTRAS", "default_driver", "installed", "require"]

#: The extra that installs each PostgreSQL driver (the SQLAlchemy dialect's driver name),
#: in order of preference for a URL that names none.
DRIVER_EXTRAS = {"psycopg2": "psycopg2", "psycopg": "psycopg"}

# The package that provides each importable module, when the names differ.
_PACKAGES = {"pyarrow": "pyarrow", "pandas": "pandas", "psycopg": "psycopg", "psycopg2": "psycopg2",
             "matplotlib": "matplotlib"}  # fmt: skip


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found on the path; nothing is imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken spec
        return False


def default_driver() -> str:
    """The driver a URL without one gets: psycopg2 if installed, else psycopg 3, else psycopg2.

    (With neither installed it is psycopg2, and making an engine says which
    extras provide a driver.)
    """
    for driver in DRIVER_EXTRAS:
        if installed(driver):
            return driver
    return next(iter(DRIVER_EXTRAS))


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or raise MissingDependencyError naming ``extra``.

    Args:
        module: the dotted module name (``"pyarrow.parquet"``).
        extra: the vectorstore extra that installs it (``"io"``).
        feature: what needs it, for the message (``"reading parquet files"``).

    Raises:
        MissingDependencyError: the module (or its top-level package) is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.partition(".")[0]
        if exc.name is not None and exc.name.partition(".")[0] != top:
            raise  # the package is there but one of *its* dependencies is not: a real error
        package = _PACKAGES.get(top, top)
        raise MissingDependencyError(
            f"{feature} needs {package}, which is not installed: pip install 'vectorstore[{extra}]'"
        ) from exc
