"""Honest progress: a total for every source, named phases, no third-party bars."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import URL

import vectorstore as vs
from vectorstore._progress import Progress, count_lines, duration
from vectorstore.write.inputs import source_total


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    frame = pd.DataFrame({"text": [f"row {i}" for i in range(12)], "n": range(12)})
    paths = {"csv": tmp_path / "rows.csv", "jsonl": tmp_path / "rows.jsonl",
             "parquet": tmp_path / "rows.parquet"}  # fmt: skip
    frame.to_csv(paths["csv"], index=False)
    paths["jsonl"].write_text("".join(json.dumps({"text": t}) + "\n" for t in frame["text"]))
    frame.to_parquet(paths["parquet"])
    return paths


def test_every_source_has_a_total(files: dict[str, Path]) -> None:
    assert source_total(files["parquet"]) == (12, False)  # the file's metadata
    assert source_total(str(files["csv"])) == (12, True)  # a line count, header excluded
    assert source_total(files["jsonl"]) == (12, True)
    assert source_total([{"text": "a"}] * 5) == (5, False)
    assert source_total(iter([{"text": "a"}])) == (None, False)


def test_a_path_is_never_measured_as_a_string(files: dict[str, Path]) -> None:
    total, _ = source_total(str(files["csv"]))
    assert total != len(str(files["csv"]))


def test_a_line_count_is_an_over_estimate_and_the_bar_ends_on_the_real_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('text\n"two\nlines"\nplain\n')
    assert count_lines(quoted, header=True) == 3  # two rows really
    no_newline = tmp_path / "last.jsonl"
    no_newline.write_text('{"text": "a"}\n{"text": "b"}')
    assert count_lines(no_newline, header=False) == 2
    with Progress("ingest", total=3, estimated=True, enabled=True) as bar:
        bar.phase("writing")
        bar.update(2)
    assert "2/2" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_ingest_shows_the_files_rows_as_its_total(
    db_url: URL, files: dict[str, Path], kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with vs.DocumentRepository.standalone(db_url, collection=kind,
                                          embedder=vs.HashingTestEmbedder()) as repo:  # fmt: skip
        result = vs.ingest(str(files[kind]), repository=repo, progress=True)
    assert result.inserted == 12
    err = capsys.readouterr().err
    assert re.search(r"ingest \[writing\]: 100%.*\b12/12\b", err), err
    assert f"/{len(str(files[kind]))} " not in err  # the old bug: the path's length as total
    assert "[embedding]" in err or "[writing]" in err


def test_a_dataframe_has_a_total(db_url: URL, capsys: pytest.CaptureFixture[str]) -> None:
    frame = pd.DataFrame({"text": [f"t {i}" for i in range(7)],
                          "embedding": list(np.eye(7, 384, dtype=np.float32))})  # fmt: skip
    with vs.DocumentRepository.standalone(db_url, collection="f", embedding_model="m") as repo:
        vs.ingest(frame, repository=repo, progress=True)
    assert "7/7" in capsys.readouterr().err


def test_no_bar_off_a_terminal(db_url: URL, capsys: pytest.CaptureFixture[str]) -> None:
    with vs.DocumentRepository.standalone(db_url, collection="q",
                                          embedder=vs.HashingTestEmbedder()) as repo:  # fmt: skip
        vs.ingest(["a", "b"], repository=repo)
    assert capsys.readouterr().err == ""


def test_durations_read_like_a_person_wrote_them() -> None:
    assert [duration(s) for s in (0.42, 75, 4000)] == ["0.4 s", "1 min 15 s", "1 h 6 min"]


@pytest.mark.model
def test_loading_the_model_prints_no_bar_of_its_own(capfd: pytest.CaptureFixture[str]) -> None:
    embedder = vs.SentenceTransformerEmbedder(device="cpu")
    assert embedder.embed(["hello"]).shape == (1, 384)
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()  # restored afterwards
