"""vectorstore's alembic migrations (shipped in the wheel as ``vectorstore._migrations``)."""
