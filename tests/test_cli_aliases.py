"""``vectorstore alias ...``, ``collection rename --alias`` and ``reembed``, end to end."""

from __future__ import annotations

import json

from sqlalchemy import URL

import vectorstore as vs
from tests.test_cli import assert_user_error, run


def test_alias_and_reembed_commands(db_url: URL) -> None:
    """One driver: the library functions these commands call are tested on both."""
    url = db_url
    with vs.DocumentRepository.standalone(url, collection="notes",
                                          embedder=vs.HashingTestEmbedder()) as repo:  # fmt: skip
        repo.bulk_add([{"text": f"note {i} on things", "external_id": str(i)} for i in range(12)])
    renamed = run("collection", "rename", "notes", "notes_v1", "--alias", url=url)
    assert renamed.returncode == 0, renamed.stderr
    assert "alias notes -> notes_v1 kept" in renamed.stdout
    listed = json.loads(run("collection", "list", "--json", url=url).stdout)
    assert [(c["name"], c["aliases"], c["rows"]) for c in listed] == [("notes_v1", ["notes"], 12)]
    assert listed[0]["size_bytes"] > 0
    info = run("collection", "info", "notes", url=url)  # an alias works where a name does
    assert "notes_v1" in info.stdout
    assert "aliases:    notes" in info.stdout

    done = run("reembed", "notes", "--target", "notes_v2", "--embedder", "hashing",
               "--commit-rows", "5", url=url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "notes_v2: 12 rows" in done.stdout
    assert "alias notes -> notes_v2" in done.stdout
    aliases = json.loads(run("alias", "list", "--json", url=url).stdout)
    assert [(a["name"], a["collection"], a["previous"]) for a in aliases] == [
        ("notes", "notes_v2", "notes_v1")]  # fmt: skip

    back = run("alias", "rollback", "notes", url=url)
    assert back.returncode == 0, back.stderr
    assert vs.get_alias(url, "notes").collection == "notes_v1"
    assert run("alias", "switch", "notes", "notes_v2", url=url).returncode == 0
    assert run("alias", "create", "other", "notes_v1", url=url).returncode == 0
    assert_user_error(run("alias", "create", "other", "notes_v1", url=url), "exists already")
    assert_user_error(run("alias", "switch", "nope", "notes_v1", url=url), "no alias")
    assert_user_error(run("collection", "drop", "notes_v1", "--yes", url=url), "other")
    assert run("alias", "drop", "other", url=url).returncode == 0
    assert_user_error(
        run("reembed", "missing", "--target", "x", "--embedder", "hashing", url=url),
        "no collection",
    )
    assert [c.name for c in vs.list_collections(url)] == ["notes_v1", "notes_v2"]
