"""The database's shape: the ANN index catalog, index DDL, maintenance around big loads, migrations.

Both wings stand on this package: ``catalog`` is the one reader of the index
catalog (cached per engine and table), ``indexes`` renders and runs index
DDL, ``maintenance`` builds indexes with build settings and progress,
``big_load`` decides which secondary indexes a big load drops and rebuilds,
``migrate`` runs vectorstore's alembic revisions from code and
``alembic_hooks`` holds what the migration environment and scripts share.
"""
