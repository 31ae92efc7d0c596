"""No Django models: vectorstore's tables are SQLAlchemy's, migrated by its alembic revisions.

The module exists because Django sends ``post_migrate`` only to apps with a
models module, and the app listens to it (see ``apps.after_migrate_or_flush``).
"""
