"""The public API is what vectorstore/__init__.py exports, and nothing is missing from __all__."""

from __future__ import annotations

import inspect

import vectorstore as vs


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for name, value in vars(vs).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(vs.__all__) - {"__version__"}


def test_every_exported_name_exists() -> None:
    for name in vs.__all__:
        assert hasattr(vs, name), name


def test_errors_share_one_base() -> None:
    for name in vs.__all__:
        value = getattr(vs, name)
        if inspect.isclass(value) and issubclass(value, Exception):
            assert issubclass(value, vs.VectorStoreError), name
    assert issubclass(vs.ValidationError, ValueError)
    assert issubclass(vs.CollectionNotFoundError, LookupError)
