"""Configuration order and URL handling."""

from __future__ import annotations

import pytest
from sqlalchemy import make_url

import vectorstore as vs
from tests.conftest import TEST_DATA_DIR


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg2"),
        ("postgres://u:p@h/db", "postgresql+psycopg2"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
    ],
)
def test_urls_name_their_driver_explicitly(given: str, expected: str) -> None:
    assert vs.normalize_url(given).drivername == expected


@pytest.mark.parametrize(
    "bad",
    ["mysql://u:secret@h/db", "postgresql+asyncpg://u:secret@h/db", "not a url at all secret"],
)
def test_unusable_urls_are_configuration_errors_without_the_password(bad: str) -> None:
    with pytest.raises(vs.ConfigurationError) as info:
        vs.normalize_url(bad)
    assert "secret" not in str(info.value)


def test_explicit_argument_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECTORSTORE_DATABASE_URL", "postgresql://env@envhost/envdb")
    assert vs.resolve_url("postgresql://arg@arghost/argdb").host == "arghost"
    assert vs.resolve_url().host == "envhost"


def test_embedded_default_when_nothing_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VECTORSTORE_DATABASE_URL", raising=False)
    monkeypatch.setenv("VECTORSTORE_DATA_DIR", str(TEST_DATA_DIR))
    url = vs.resolve_url()
    assert url.drivername == "postgresql+psycopg2"
    assert url.query["host"] == str(vs.EmbeddedServer(TEST_DATA_DIR).socket_dir)
    engine = vs.make_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    engine.dispose()


def test_passwords_are_masked_when_urls_and_engines_are_printed() -> None:
    url = vs.normalize_url("postgresql://alice:hunter2@db.internal/app")
    engine = vs.make_engine(url)
    assert "hunter2" not in str(url)
    assert "hunter2" not in repr(url)
    assert "hunter2" not in repr(engine)
    assert make_url(url.render_as_string(hide_password=False)).password == "hunter2"
    engine.dispose()
