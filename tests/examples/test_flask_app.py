"""The Flask example through Flask's test client, against a real database."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import URL, Engine

import vectorstore as vs
from examples.flask_app import create_app
from tests.conftest import table_count


@pytest.fixture
def app(vectorstore_url: URL, vectorstore_embedder: vs.HashingTestEmbedder) -> Iterator[Flask]:
    app = create_app(
        {"VECTORSTORE_DATABASE_URL": vectorstore_url, "VECTORSTORE_EMBEDDER": vectorstore_embedder}
    )
    yield app
    app.extensions["vectorstore"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def add(client: FlaskClient, **body: Any) -> Any:
    return client.post("/documents", json=body)


def test_add_then_get_then_search(client: FlaskClient, vectorstore_engine: Engine) -> None:
    created = add(client, text="the cat sleeps on the mat", metadata={"kind": "pet"},
                  external_id="c1")  # fmt: skip
    assert created.status_code == 201
    doc = created.get_json()
    assert doc["external_id"] == "c1"
    assert doc["metadata"] == {"kind": "pet"}
    # Committed: visible from another connection.
    assert table_count(vectorstore_engine) == 1

    got = client.get(f"/documents/{doc['id']}")
    assert got.status_code == 200
    assert got.get_json()["text"] == "the cat sleeps on the mat"

    add(client, text="stock prices fell sharply", metadata={"kind": "finance"})
    found = client.get("/search", query_string={"q": "a cat on a mat", "k": 1})
    assert found.status_code == 200
    body = found.get_json()
    assert [r["external_id"] for r in body["results"]] == ["c1"]
    assert body["results"][0]["score"] > 0
    assert body["strategy"]


def test_bulk_add_and_filtered_search(client: FlaskClient) -> None:
    docs = [{"text": f"note {i} about cats", "metadata": {"kind": "pet" if i % 2 else "other"},
             "external_id": f"n{i}"} for i in range(10)]  # fmt: skip
    done = client.post("/documents/bulk", json={"documents": docs})
    assert done.status_code == 201
    assert done.get_json()["inserted"] == 10

    found = client.get("/search", query_string={"q": "cats", "k": 10, "where": "kind=pet"})
    results = found.get_json()["results"]
    assert len(results) == 5
    assert {r["metadata"]["kind"] for r in results} == {"pet"}

    again = client.post("/documents/bulk?on_conflict=skip", json=docs)
    assert again.status_code == 201
    assert again.get_json()["skipped"] == 10


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "needle"),
    [
        ("post", "/documents", {"json": {"txt": "no text key"}}, '"text" string'),
        ("post", "/documents", {"data": "{not json", "content_type": "application/json"},
         "malformed JSON"),
        ("post", "/documents", {"json": {"text": ""}}, "text"),
        ("post", "/documents", {"json": {"text": "x", "metadata": "not an object"}}, "metadata"),
        ("post", "/documents/bulk", {"json": []}, "non-empty list"),
        ("post", "/documents/bulk?on_conflict=bogus", {"json": [{"text": "x"}]}, "on_conflict"),
        ("get", "/search", {}, "q (the query text) is required"),
        ("get", "/search?q=x&k=abc", {}, "k must be an integer"),
        ("get", "/search?q=x&k=0", {}, "k must be between"),
        ("get", "/search?q=x&where=novalue", {}, "key=value"),
        ("get", "/search?q=x&filter=%7Bbad", {}, "malformed JSON"),
        ("get", "/search?q=x&filter=%7B%22k%22%3A%7B%22%24nope%22%3A1%7D%7D", {}, "$nope"),
    ],
)  # fmt: skip
def test_bad_input_is_400_json_and_writes_nothing(
    client: FlaskClient, vectorstore_engine: Engine, method: str, path: str,
    kwargs: dict[str, Any], needle: str,
) -> None:  # fmt: skip
    add(client, text="seed document")
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert needle in body["message"]
    assert body["error"]
    assert table_count(vectorstore_engine) == 1


def test_missing_document_and_route_are_404(client: FlaskClient) -> None:
    missing = client.get("/documents/999999")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == "DocumentNotFoundError"
    assert client.get("/nope").status_code == 404
    assert client.get("/nope").get_json()["error"] == "NotFound"


def test_duplicate_external_id_is_409_and_the_first_stays(
    client: FlaskClient, vectorstore_engine: Engine
) -> None:
    assert add(client, text="first", external_id="same").status_code == 201
    again = add(client, text="second", external_id="same")
    assert again.status_code == 409
    assert table_count(vectorstore_engine) == 1
    # The request-scoped session is still usable after the failed write.
    assert add(client, text="third", external_id="other").status_code == 201


def test_a_database_that_is_down_is_503(vectorstore_embedder: vs.HashingTestEmbedder) -> None:
    closed = Path(tempfile.mkdtemp(prefix="vs-flask-down-", dir="/tmp"))
    try:
        url = f"postgresql://postgres@/vectorstore?host={closed}"
        app = create_app({"VECTORSTORE_DATABASE_URL": url, "VECTORSTORE_MIGRATE": False,
                          "VECTORSTORE_EMBEDDER": vectorstore_embedder})  # fmt: skip
        client = app.test_client()
        for response in (
            client.get("/search?q=cats"),
            client.post("/documents", json={"text": "x"}),
            client.get("/documents/1"),
        ):
            assert response.status_code == 503
            body = response.get_json()
            assert body["error"] == "DatabaseUnavailable"
            assert str(closed) not in body["message"]
        app.extensions["vectorstore"].engine.dispose()
    finally:
        shutil.rmtree(closed, ignore_errors=True)


def test_the_search_page_lists_results_and_escapes_them(client: FlaskClient) -> None:
    add(client, text="<script>alert('cat')</script> a cat on the mat", metadata={"kind": "pet"})
    add(client, text="bond yields rose", metadata={"kind": "finance"})
    empty = client.get("/")
    assert empty.status_code == 200
    assert 'id="results"' not in empty.get_data(as_text=True)
    page = client.get("/", query_string={"q": "cat on the mat", "where": "kind=pet"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="results"' in html
    assert "&lt;script&gt;" in html
    assert "<script>" not in html
    assert 'id="strategy"' in html
    assert "bond yields" not in html  # the filter applied
    link = html.split('<a href="/doc/')[1].split('"')[0]
    doc = client.get(f"/doc/{link}")
    assert doc.status_code == 200
    assert "&lt;script&gt;" in doc.get_data(as_text=True)


def test_the_search_page_shows_bad_input_as_a_message(client: FlaskClient) -> None:
    page = client.get("/", query_string={"q": "cats", "k": "0"})
    assert page.status_code == 400
    assert "k must be between" in page.get_data(as_text=True)
