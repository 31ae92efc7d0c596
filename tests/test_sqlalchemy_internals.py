"""The private SQLAlchemy names the fast path relies on, checked against the installed version.

Every one of them is used in ``vectorstore/query/raw.py`` and nowhere else; when
an upgrade of SQLAlchemy moves one, this test names it instead of the fast path
failing (or silently falling back) in production.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import Engine

import vectorstore as vs
from vectorstore.query import raw

PACKAGE = Path(vs.__file__).resolve().parent


def test_every_internal_the_raw_path_uses_exists(engine: Engine) -> None:
    assert raw.check_internals(engine, vs.Document) == []


def test_the_check_would_name_a_missing_internal(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(raw.INTERNALS, "Engine", ("_execution_options", "_no_such_internal"))
    assert raw.check_internals(engine, vs.Document) == ["Engine._no_such_internal"]


def _private_attributes(path: Path) -> set[str]:
    """Underscored attribute names read on objects other than self / cls / a module of ours."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not (
            node.attr.startswith("__") and node.attr.endswith("__")
        ):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            found.add(node.attr)
    return found


def test_sqlalchemy_internals_live_in_the_raw_module_only() -> None:
    internals = {name for names in raw.INTERNALS.values() for name in names if name[0] == "_"}
    internals |= {"_sa_instance_state"}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "raw.py" and path.parent.name == "query":
            continue
        used = _private_attributes(path) & internals
        assert not used, f"{path.relative_to(PACKAGE)} uses SQLAlchemy internals {sorted(used)}"
