"""The public API is what vectorstore/__init__.py exports, and nothing is missing from __all__."""

from __future__ import annotations

import inspect

import vectorstore as vs


def test_all_lists_every_public_name() -> None:
    # Names load on first use (PEP 562); load them all, then nothing else may be public.
    for name in vs.__all__:
        getattr(vs, name)
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
        if inspect.isclass(value) and issubclass(value, Warning):
            assert issubclass(value, vs.VectorStoreWarning), name
        elif inspect.isclass(value) and issubclass(value, Exception):
            assert issubclass(value, vs.VectorStoreError), name
    assert issubclass(vs.ValidationError, ValueError)
    assert issubclass(vs.CollectionNotFoundError, LookupError)


def test_the_migrate_module_is_reachable_as_a_module_beside_the_function() -> None:
    import importlib
    import types

    module = importlib.import_module("vectorstore.schema.migrate")
    assert isinstance(module, types.ModuleType)
    assert module.migrate is vs.migrate
    assert callable(vs.migrate)
    assert not isinstance(vs.migrate, types.ModuleType)


def test_the_typed_vocabulary_is_exported() -> None:
    import typing

    assert set(typing.get_args(vs.Metric)) == {"cosine", "l2", "inner_product", "l1"}
    assert set(typing.get_args(vs.Strategy)) == {"auto", "index", "iterative", "exact"}
    assert set(typing.get_args(vs.ConflictPolicy)) == {"error", "skip", "update"}
    returns = {
        name: inspect.signature(getattr(vs.DocumentRepository, name)).return_annotation
        for name in ("explain", "measure_recall", "list_indexes")
    }
    assert returns == {
        "explain": "ExplainReport", "measure_recall": "RecallReport",
        "list_indexes": "list[AnnIndex]",
    }  # fmt: skip


def test_names_load_lazily_and_unknown_names_fail() -> None:
    import subprocess
    import sys

    import pytest

    assert set(vs.__all__) <= set(dir(vs))
    with pytest.raises(AttributeError, match="no_such_name"):
        vs.no_such_name  # noqa: B018
    code = (
        "import sys, vectorstore as vs\n"
        "heavy = {'sqlalchemy', 'numpy', 'torch', 'pandas', 'pyarrow'}\n"
        "assert not heavy & {m.split('.')[0] for m in sys.modules}, sorted(sys.modules)\n"
        "vs.DocumentRepository\n"
        "assert 'sqlalchemy' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
