"""Embedding backends for the bundled sentence-transformers model, and the gate that admits them.

:class:`vectorstore.SentenceTransformerEmbedder` runs its model through one of
these backends (``backend=`` / ``precision=``):

* ``torch`` (:mod:`.torch_backend`): PyTorch, fp32 (sentence-transformers'
  own path, the reference every other backend is measured against), or
  fp16 / bf16 with scaled-dot-product attention, length-sorted batches and
  tokenization overlapped with the model (the GPU path).
* ``onnxruntime`` (:mod:`.onnx_backend`) and ``openvino``
  (:mod:`.openvino_backend`): an ONNX export of the same weights built
  locally (:mod:`.export`), fp32 or statically quantized int8 calibrated on
  a sample of the user's own texts.

Every backend but torch fp32 must pass the quality gate (:mod:`.gate`) on
a held-out sample before it embeds anything; :mod:`.select` measures the
admitted ones and picks the fastest for ``backend="auto"``.  Nothing here
imports torch, onnxruntime or openvino at import time.
"""
