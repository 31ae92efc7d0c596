"""The source weights of an export, their fingerprint, and the on-disk export cache.

Exports (ONNX files, OpenVINO IR, their int8 versions) are built locally from
the model folder and cached under ``<cache>/<fingerprint>/``: the fingerprint
is a SHA-256 of every source file the export reads (weights, config,
tokenizer) and of :data:`EXPORT_VERSION`, so a changed file (or a new way of
exporting) builds a fresh export instead of reusing a stale one.  The cache
is ``$VECTORSTORE_EXPORT_CACHE``, else the user cache folder
(``platformdirs``), ``vectorstore/exports``.  Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["EXPORT_VERSION", "SOURCE_FILES", "cache_root", "cached", "fingerprint", "texts_hash"]

#: Bumped whenever the export changes what it writes (the graph, the quantization recipe).
EXPORT_VERSION = "2"

#: The files of a model folder an export depends on.
SOURCE_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "config.json",
    "tokenizer.json",
    "sentence_bert_config.json",
    "modules.json",
    "1_Pooling/config.json",
)


def cache_root(override: str | Path | None = None) -> Path:
    """Where exports are cached (created on demand)."""
    if override is not None:
        return Path(override)
    env = os.environ.get("VECTORSTORE_EXPORT_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("vectorstore")) / "exports"


def fingerprint(model_dir: Path) -> str:
    """A SHA-256 (hex, 16 characters) of the model folder's source files and the export version."""
    digest = hashlib.sha256(f"vectorstore-export-{EXPORT_VERSION}".encode())
    for name in SOURCE_FILES:
        path = model_dir / name
        if not path.is_file():
            continue
        digest.update(name.encode() + b"\0")
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:16]


def texts_hash(texts: Iterable[str]) -> str:
    """A short hash of calibration texts (an int8 export depends on them)."""
    digest = hashlib.sha256()
    for t in texts:
        digest.update(t.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()[:12]


def cached(path: Path, build: Callable[[Path], None], *, companions: tuple[str, ...] = ()) -> Path:
    """``path``, built by ``build(tmp_path)`` first when it is not there yet.

    The build writes into a temporary folder next to the cache entry, and the
    result is renamed into place: a build that fails or is interrupted leaves
    nothing that a later run would take for a finished export.
    ``companions``: suffixes of files written with it (OpenVINO's ``.bin``).
    """
    if path.exists() and all(path.with_suffix(s).exists() for s in companions):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".build-") as tmp:
        out = Path(tmp) / path.name
        build(out)
        for suffix in companions:
            os.replace(out.with_suffix(suffix), path.with_suffix(suffix))
        os.replace(out, path)
    return path
