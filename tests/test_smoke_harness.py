from sqlalchemy import Engine

import vectorstore as vs
from tests.conftest import table_count
from vectorstore.schema.migrate import head_revision


def test_fresh_database_is_migrated_and_empty(engine: Engine) -> None:
    assert vs.current_revision(engine) == head_revision()
    assert table_count(engine) == 0
