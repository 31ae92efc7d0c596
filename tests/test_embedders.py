"""Embedders: the protocol, the deterministic test embedder and the real MiniLM model."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

import vectorstore as vs
from vectorstore.embedders import bundled_model_path, pick_device

MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def test_hashing_embedder_is_deterministic_and_normalized() -> None:
    a = vs.HashingTestEmbedder().embed(["the quick brown fox", "lorem ipsum"])
    b = vs.HashingTestEmbedder().embed(["the quick brown fox", "lorem ipsum"])
    assert a.dtype == np.float32
    assert a.shape == (2, 384)
    assert np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    assert not np.allclose(a[0], a[1])


def test_hashing_embedder_shares_words_not_meaning() -> None:
    emb = vs.HashingTestEmbedder()
    q, same_words, other = emb.embed(["red shoes", "shoes that are red", "crimson sneakers"])
    assert q @ same_words > q @ other


def test_both_embedders_satisfy_the_protocol() -> None:
    assert isinstance(vs.HashingTestEmbedder(), vs.Embedder)
    assert isinstance(vs.SentenceTransformerEmbedder(), vs.Embedder)


def test_embed_refuses_a_bare_string() -> None:
    with pytest.raises(vs.ValidationError):
        vs.HashingTestEmbedder().embed("not a list")


def test_default_model_name_and_dimension_need_no_model_load() -> None:
    emb = vs.SentenceTransformerEmbedder()
    assert emb.model_name == vs.DEFAULT_MODEL_NAME
    assert emb.dimension == 384
    assert not emb.loaded


def test_import_vectorstore_does_not_import_torch() -> None:
    code = (
        "import sys, vectorstore; "
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_bundled_weights_are_the_upstream_file() -> None:
    path = bundled_model_path()
    assert path is not None
    digest = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    assert digest == MODEL_SHA256
    assert bundled_model_path("some-org/other-model") is None


def test_explicit_device_wins() -> None:
    assert pick_device("cpu") == "cpu"
    assert pick_device("cuda:1") == "cuda:1"


def test_without_a_device_the_best_available_one_is_picked() -> None:
    torch = pytest.importorskip("torch")
    mps = getattr(torch.backends, "mps", None)
    expected = (
        "cuda" if torch.cuda.is_available()
        else "mps" if mps is not None and mps.is_available()
        else "cpu"
    )  # fmt: skip
    assert pick_device(None) == expected


@pytest.mark.model
def test_minilm_ranks_by_meaning(minilm: vs.SentenceTransformerEmbedder) -> None:
    cat, kitten, stocks = minilm.embed(
        ["a cat sits on the mat", "a kitten on a rug", "stock market report"]
    )
    assert cat @ kitten > cat @ stocks + 0.2


@pytest.mark.model
def test_minilm_output_shape_dtype_and_norm(minilm: vs.SentenceTransformerEmbedder) -> None:
    vectors = minilm.embed(["one", "two", "three"])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.embed([]).shape == (0, 384)
    assert minilm.device == "cpu"


@pytest.mark.model
def test_a_hub_name_that_is_not_bundled_fails_offline_clearly() -> None:
    emb = vs.SentenceTransformerEmbedder("some-org/not-a-real-model-xyz")
    with pytest.raises(vs.EmbedderError, match="not-a-real-model-xyz"):
        emb.embed(["x"])
