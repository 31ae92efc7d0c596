"""Tuning you can see: measure_recall's report drawn, and ``vectorstore tune --plot``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import URL

import vectorstore as vs
from tests.test_cli import assert_user_error, cli_env, run
from vectorstore.query.diagnostics import RecallPoint, RecallReport
from vectorstore.query.recall_plot import DEFAULT_LABELS

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def indexed(db_url: URL) -> URL:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((20, 384))
    vectors = (centres[rng.integers(0, 20, 3000)] + 0.3 * rng.standard_normal((3000, 384)))
    with vs.DocumentRepository.standalone(db_url, collection="tuned",
                                          embedding_model="synthetic") as repo:  # fmt: skip
        repo.bulk_add(vectors.astype(np.float32), texts=[f"t{i}" for i in range(3000)])
    return db_url


def test_report_plot_draws_a_png_with_the_default_marked(tmp_path: Path) -> None:
    points = [RecallPoint(f"ef_search={ef}", recall, p50, p50 * 2, 10, {"index": 5})
              for ef, recall, p50 in [(40, 0.93, 0.8), (100, 0.97, 1.0), (200, 0.99, 1.4)]]
    report = RecallReport(k=10, queries=5, exact_p50_ms=3.0, points=points)
    assert "ef_search=200" in DEFAULT_LABELS
    written = report.plot(tmp_path / "recall.png")
    assert written.read_bytes().startswith(PNG)
    with pytest.raises(vs.ValidationError, match="no folder"):
        report.plot(tmp_path / "missing" / "recall.png")
    with pytest.raises(vs.ValidationError, match="no settings"):
        RecallReport(k=10, queries=0, exact_p50_ms=0.0, points=[]).plot(tmp_path / "x.png")


def test_measure_recall_then_plot(indexed: URL, tmp_path: Path) -> None:
    with vs.DocumentRepository.standalone(indexed, collection="tuned") as repo:
        queries = list(np.random.default_rng(1).standard_normal((5, 384)).astype(np.float32))
        report = repo.measure_recall(queries, k=5, ef_search=[10, 200])
    assert [p.label for p in report.points] == ["ef_search=10", "ef_search=200"]
    assert report.plot(tmp_path / "r.png").read_bytes().startswith(PNG)


def test_tune_command_prints_the_table_and_draws_the_plot(indexed: URL, tmp_path: Path) -> None:
    picture = tmp_path / "tune.png"
    done = run("tune", "-c", "tuned", "--sample", "10", "--ef-search", "20,200",
               "--plot", str(picture), url=indexed)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| ef_search=20 |" in done.stdout
    assert "| ef_search=200 |" in done.stdout
    assert picture.read_bytes().startswith(PNG)


def test_tune_mistakes_are_one_line(indexed: URL, tmp_path: Path) -> None:
    assert_user_error(run("tune", "-c", "nope", url=indexed), "no collection")
    assert_user_error(run("tune", "-c", "tuned", "--queries", str(tmp_path / "q.txt"),
                          url=indexed), "no such file")  # fmt: skip
    assert_user_error(run("tune", "-c", "tuned", "--plot", str(tmp_path / "no" / "p.png"),
                          url=indexed), "no such folder")  # fmt: skip
    assert run("tune", "--ef-search", "0", url=indexed).returncode == 2


def test_without_matplotlib_the_plot_names_the_extra(indexed: URL, tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        sys.modules["matplotlib"] = None
        from vectorstore.cli import main
        sys.exit(main(["--database-url", {indexed.render_as_string(hide_password=False)!r},
                       "tune", "-c", "tuned", "--plot", {str(tmp_path / "p.png")!r}]))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=cli_env(), timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert "pip install 'vectorstore[plot]'" in done.stderr
    assert not (tmp_path / "p.png").exists()
