"""The bundled model's tokenizer without sentence-transformers: no built-in padding, cut at 256.

The bundled ``tokenizer.json`` has *fixed* padding to 128 tokens built in.
sentence-transformers ignores it (it pads each batch to its longest text and
truncates at the model's ``max_seq_length``, 256); a raw ``tokenizers``
tokenizer would apply it, making every short text 128 tokens long (slower)
and cutting long texts at 128 (different vectors).  :class:`Tokens` turns the
built-in padding off, truncates where sentence-transformers does, and pads
each batch itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vectorstore.errors import EmbedderError

__all__ = ["Batch", "Tokens", "length_sorted"]

IntMatrix = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Batch:
    """One padded batch: ``input_ids`` and ``attention_mask``, both ``(rows, longest)``."""

    input_ids: IntMatrix
    attention_mask: IntMatrix


def max_seq_length(model_dir: Path) -> int:
    """The model's ``max_seq_length`` (sentence_bert_config.json), 256 for all-MiniLM-L6-v2."""
    config = model_dir / "sentence_bert_config.json"
    if config.exists():
        value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
    return 256


class Tokens:
    """Tokenize texts as sentence-transformers does, into numpy batches."""

    def __init__(self, model_dir: Path, max_length: int | None = None) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - transformers always brings tokenizers
            raise EmbedderError("the embedding backends need the 'tokenizers' package") from exc
        path = model_dir / "tokenizer.json"
        if not path.exists():
            raise EmbedderError(f"{model_dir} has no tokenizer.json")
        tokenizer: Any = Tokenizer.from_file(str(path))
        tokenizer.no_padding()  # the file's fixed padding to 128 is not sentence-transformers'
        self.max_length = max_length or max_seq_length(model_dir)
        tokenizer.enable_truncation(max_length=self.max_length)
        pad = tokenizer.token_to_id("[PAD]")
        self.pad_id = int(pad) if pad is not None else 0
        self._tokenizer = tokenizer

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids (with [CLS] and [SEP]), unpadded."""
        return [list(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def pad(self, ids: Sequence[Sequence[int]]) -> Batch:
        """``ids`` padded to the longest of them."""
        longest = max((len(i) for i in ids), default=0)
        input_ids = np.full((len(ids), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return Batch(input_ids, mask)

    def batch(self, texts: Sequence[str]) -> Batch:
        return self.pad(self.ids(texts))


def length_sorted(ids: Sequence[Sequence[int]], batch_size: int) -> list[npt.NDArray[np.intp]]:
    """Row numbers in batches of similar length (longest first): little padding per batch."""
    order = np.argsort([-len(i) for i in ids], kind="stable")
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
