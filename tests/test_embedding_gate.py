"""The embedding backends without the model: the gate, provenance, the cache, auto's choice.

The real backends against torch fp32 are in tests/test_embedding_backends.py
(marked ``model``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs
from vectorstore.embedding.gate import compare, topk_agreement
from vectorstore.embedding.provenance import REFERENCE, Provenance, compatible
from vectorstore.embedding.select import MIN_SAMPLE, choose, split_sample
from vectorstore.embedding.source import cached, fingerprint, texts_hash

DIM = 384


def _unit(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def vectors() -> np.ndarray:
    return _unit(np.random.default_rng(7).normal(size=(200, 32)))


# -- the gate ---------------------------------------------------------------------------
def test_identical_vectors_are_admitted(vectors: np.ndarray) -> None:
    report = compare("x/fp32", vectors, vectors.copy())
    assert report.admitted
    assert report.min_cosine == pytest.approx(1.0)
    assert report.agreement == 1.0
    assert "admitted" in str(report)


def test_small_noise_passes_and_large_noise_is_refused(vectors: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    slight = _unit(vectors + rng.normal(scale=1e-4, size=vectors.shape))
    assert compare("x/int8", vectors, slight).admitted
    rough = _unit(vectors + rng.normal(scale=0.05, size=vectors.shape))
    report = compare("x/int8", vectors, rough)
    assert not report.admitted
    assert report.min_cosine < 0.99
    assert "refused" in str(report)


def test_one_bad_vector_is_enough_to_refuse(vectors: np.ndarray) -> None:
    broken = vectors.copy()
    broken[17] = -broken[17]
    report = compare("x/int8", vectors, broken)
    assert report.mean_cosine > 0.98  # the mean hides it; the minimum does not
    assert not report.admitted


def test_neighbours_in_another_order_fail_on_agreement(vectors: np.ndarray) -> None:
    # A rotation keeps every neighbourhood: full agreement.
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(32, 32)))
    assert topk_agreement(vectors, (vectors @ q).astype(np.float32)) == pytest.approx(1.0)
    shuffled = vectors[np.random.default_rng(4).permutation(len(vectors))]
    assert topk_agreement(vectors, shuffled) < 0.2


def test_nan_or_wrong_shape_is_refused(vectors: np.ndarray) -> None:
    bad = vectors.copy()
    bad[0, 0] = np.nan
    assert not compare("x", vectors, bad).admitted
    assert not compare("x", vectors, vectors[:, :16]).admitted


# -- provenance -------------------------------------------------------------------------
def test_provenance_compatibility_rules() -> None:
    ort_int8 = Provenance("onnxruntime", "int8", admitted=True)
    ov_fp32 = Provenance("openvino", "fp32", admitted=True)
    unadmitted = Provenance("onnxruntime", "int8", admitted=False)
    assert compatible(REFERENCE, ort_int8)
    assert compatible(ov_fp32, ort_int8)
    assert compatible(unadmitted, unadmitted)
    assert not compatible(REFERENCE, unadmitted)
    assert not compatible(unadmitted, REFERENCE)
    assert not compatible(Provenance("openvino", "int8", admitted=False), unadmitted)
    assert compatible(None, unadmitted)
    assert compatible(REFERENCE, None)
    assert Provenance.from_json(unadmitted.to_json()) == unadmitted
    assert Provenance.from_json(None) is None
    assert Provenance.from_json({"backend": 3}) is None


class _Told(vs.HashingTestEmbedder):
    """The hashing embedder, claiming a backend (the model's name stays the same)."""

    def __init__(self, provenance: Provenance) -> None:
        super().__init__(DIM)
        self.provenance = provenance


def _recorded(session: Session, name: str) -> object:
    return session.execute(
        text("SELECT embedding_backend FROM vectorstore_collections WHERE name = :n"), {"n": name}
    ).scalar_one()


def test_the_collection_records_the_backend_and_refuses_an_unadmitted_one(
    session: Session,
) -> None:
    first = vs.DocumentRepository(session, collection="prov", embedder=_Told(REFERENCE))
    first.bulk_add(["alpha", "beta"])
    assert _recorded(session, "prov") == {"backend": "torch", "precision": "fp32", "admitted": True}
    assert first.collection.embedding_backend == REFERENCE
    admitted = _Told(Provenance("openvino", "int8", admitted=True))
    vs.DocumentRepository(session, collection="prov", embedder=admitted).bulk_add(["gamma"])
    refused = _Told(Provenance("onnxruntime", "int8", admitted=False))
    repo = vs.DocumentRepository(session, collection="prov", embedder=refused)
    with pytest.raises(vs.EmbeddingModelMismatchError, match="not admitted"):
        repo.bulk_add(["delta"])
    with pytest.raises(vs.EmbeddingModelMismatchError):
        repo.add("delta")
    assert first.count() == 3  # nothing of the refused writes


def test_an_unadmitted_collection_takes_only_its_own_backend(engine: Engine) -> None:
    own = Provenance("onnxruntime", "int8", admitted=False)
    repo = vs.DocumentRepository.standalone(engine, collection="own", embedder=_Told(own))
    try:
        repo.add("one")
        vs.DocumentRepository.standalone(engine, collection="own", embedder=_Told(own)).add("two")
        other = vs.DocumentRepository.standalone(
            engine, collection="own", embedder=_Told(REFERENCE)
        )
        with pytest.raises(vs.EmbeddingModelMismatchError, match="onnxruntime/int8"):
            other.add("three")
        assert repo.count() == 2
    finally:
        repo.close()


def test_an_embedder_that_does_not_tell_is_checked_on_the_model_only(session: Session) -> None:
    vs.DocumentRepository(session, collection="plain", embedder=vs.HashingTestEmbedder()).add("x")
    assert _recorded(session, "plain") is None
    told = _Told(Provenance("openvino", "int8", admitted=False))
    vs.DocumentRepository(session, collection="plain", embedder=told).add("y")


# -- the export cache -------------------------------------------------------------------
def test_the_fingerprint_follows_every_source_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    before = fingerprint(tmp_path)
    assert fingerprint(tmp_path) == before
    (tmp_path / "model.safetensors").write_bytes(b"weightz")
    assert fingerprint(tmp_path) != before
    changed = fingerprint(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{}")
    assert fingerprint(tmp_path) != changed
    (tmp_path / "unrelated.txt").write_text("x")
    assert texts_hash(["a", "b"]) != texts_hash(["ab"])


def test_cached_builds_once_and_leaves_nothing_when_a_build_fails(tmp_path: Path) -> None:
    builds: list[Path] = []

    def build(out: Path) -> None:
        builds.append(out)
        out.write_text("graph")
        out.with_suffix(".bin").write_text("weights")

    target = tmp_path / "fp" / "model.xml"
    assert cached(target, build, companions=(".bin",)) == target
    assert cached(target, build, companions=(".bin",)) == target
    assert len(builds) == 1
    assert target.with_suffix(".bin").read_text() == "weights"

    def broken(out: Path) -> None:
        out.write_text("half")
        raise RuntimeError("export failed")

    other = tmp_path / "fp" / "other.onnx"
    with pytest.raises(RuntimeError):
        cached(other, broken)
    assert sorted(p.name for p in (tmp_path / "fp").iterdir()) == ["model.bin", "model.xml"]


# -- auto's choice, on stand-in backends -------------------------------------------------
class _Fake:
    def __init__(self, label: str, vectors: dict[str, np.ndarray]) -> None:
        backend, precision = label.split("/")
        self.provenance = Provenance(backend, precision, admitted=label == "torch/fp32")
        self._vectors = vectors

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vectors[t] for t in texts])


def test_auto_chooses_only_an_admitted_backend(vectors: np.ndarray) -> None:
    texts = [f"text {i}" for i in range(len(vectors))]
    good = dict(zip(texts, vectors, strict=True))
    noise = np.random.default_rng(5).normal(scale=0.2, size=vectors.shape)
    bad = dict(zip(texts, _unit(vectors + noise), strict=True))
    reference = _Fake("torch/fp32", good)

    def make(backend: str, precision: str) -> _Fake:
        if backend == "openvino":
            raise ImportError("openvino is not installed")
        return _Fake(f"{backend}/{precision}", bad if precision == "int8" else good)

    pairs = [
        ("torch", "fp32"),
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
        ("openvino", "fp32"),
    ]
    choice = choose(reference, make, pairs, texts)
    assert choice.backend.provenance.admitted
    assert choice.backend.provenance.label in {"torch/fp32", "onnxruntime/fp32"}
    by_label = {m.label: m for m in choice.measured}
    assert by_label["onnxruntime/int8"].report is not None
    assert not by_label["onnxruntime/int8"].report.admitted
    assert by_label["onnxruntime/fp32"].report is not None
    assert by_label["onnxruntime/fp32"].report.admitted
    assert "openvino/fp32 not built" in choice.reason


def test_split_sample_holds_out_half_and_dedupes() -> None:
    texts = [f"t{i % 300}" for i in range(2000)] + ["", "  "]
    calibration, held_out = split_sample(texts)
    assert not set(calibration) & set(held_out)
    assert len(calibration) + len(held_out) == 300
    assert len(held_out) >= MIN_SAMPLE


# -- the embedder's arguments ------------------------------------------------------------
def test_bad_backend_or_precision_is_refused_before_loading() -> None:
    with pytest.raises(vs.ValidationError, match="backend"):
        vs.SentenceTransformerEmbedder(backend="tensorrt")
    with pytest.raises(vs.ValidationError, match="int8"):
        vs.SentenceTransformerEmbedder(backend="torch", precision="int8")
    with pytest.raises(vs.ValidationError, match="fp16"):
        vs.SentenceTransformerEmbedder(backend="onnxruntime", precision="fp16")
    with pytest.raises(vs.ValidationError):
        vs.SentenceTransformerEmbedder(backend="auto", gate_sample="one string")
    emb = vs.SentenceTransformerEmbedder(backend="auto")
    assert not emb.loaded
    assert "auto" in repr(emb)
    assert "not chosen yet" in repr(emb)
    assert vs.SentenceTransformerEmbedder().provenance == REFERENCE


def test_nothing_heavy_is_imported_with_the_embedders() -> None:
    code = (
        "import sys, vectorstore as vs\n"
        "e = vs.SentenceTransformerEmbedder(backend='auto'); repr(e)\n"
        "import vectorstore.embedding.select, vectorstore.embedding.export\n"
        "import vectorstore.embedding.onnx_backend, vectorstore.embedding.openvino_backend\n"
        "import vectorstore.embedding.torch_backend\n"
        "heavy = {'torch', 'onnxruntime', 'openvino', 'onnx', 'nncf', 'transformers',"
        " 'sentence_transformers', 'tokenizers'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_flash_attention_only_on_cuda_in_half_precision_with_its_wheel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from vectorstore.embedding import torch_backend

    real = importlib.util.find_spec
    monkeypatch.setattr(
        torch_backend.importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "flash_attn" else real(name, *a),
    )
    assert torch_backend.attention_implementation("cuda", "fp16") == "flash_attention_2"
    assert torch_backend.attention_implementation("cuda:1", "bf16") == "flash_attention_2"
    assert torch_backend.attention_implementation("cuda", "fp32") == "sdpa"
    assert torch_backend.attention_implementation("cpu", "bf16") == "sdpa"
    monkeypatch.setattr(torch_backend.importlib.util, "find_spec", lambda name, *a: None)
    assert torch_backend.attention_implementation("cuda", "fp16") == "sdpa"


def test_candidates_follow_the_device() -> None:
    from vectorstore.embedding.select import candidates

    assert candidates("cuda") == [("torch", "fp32"), ("torch", "fp16"), ("torch", "bf16")]
    assert candidates("mps") == [("torch", "fp32")]
    cpu = candidates("cpu")
    assert cpu[0] == ("torch", "fp32")
    assert all(backend in {"torch", "onnxruntime", "openvino"} for backend, _ in cpu)


@pytest.mark.parametrize("native", [True, False])
def test_cpu_bf16_is_a_candidate_only_where_the_cpu_computes_it(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    import torch

    from vectorstore.embedding import select

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert select.cpu_has_bf16() is native
    assert (("torch", "bf16") in select.candidates("cpu")) is native
    assert ("torch", "fp16") not in select.candidates("cpu")
