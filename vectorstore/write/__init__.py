"""The write wing: any input -> validated batches -> binary COPY (or one INSERT).

``inputs`` turns what a caller hands in (records, arrays, DataFrames, files)
into :class:`~vectorstore.write.batch.Batch` objects, ``load`` owns the one
bulk load (``bulk_add``, the buffered writer and ``ingest`` all end there),
``copy`` the binary stream, ``single`` the one-row INSERT of ``add``.  This
wing never imports the query wing; both stand on ``schema``, ``_target``,
``_vector`` and ``_metrics``.
"""
