from pathlib import Path

from graphql_api.schema import sdl

SCHEMA_FILE = Path(__file__).parent.parent / "schema.graphql"


def test_checked_in_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == sdl(), (
        "schema.graphql is out of date: run `uv run flashsale schema > schema.graphql`"
    )
