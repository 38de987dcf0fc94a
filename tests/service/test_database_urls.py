"""PostgreSQL URLs as providers print them (``postgres://``, ``postgresql://``) mean psycopg 3."""

from __future__ import annotations

import pytest
from chainpipe.core import db


@pytest.mark.parametrize("url,meant", [
    ("postgres://u:pw@db.internal:5432/pipe", "postgresql+psycopg://u:pw@db.internal:5432/pipe"),
    ("postgresql://u@db/pipe?sslmode=require", "postgresql+psycopg://u@db/pipe?sslmode=require"),
    ("POSTGRES://u@db/pipe", "postgresql+psycopg://u@db/pipe"),
    ("postgresql+psycopg://u@db/pipe", "postgresql+psycopg://u@db/pipe"),
    ("sqlite:////tmp/postgres://x.db", "sqlite:////tmp/postgres://x.db"),
])
def test_postgres_schemes_are_read_as_psycopg_3(url, meant):
    assert db.normalise_url(url) == meant


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_an_engine_for_a_short_scheme_uses_the_installed_driver(scheme):
    engine = db.make_engine(f"{scheme}://nobody@127.0.0.1:1/none")  # no connection is made
    assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
    engine.dispose()
