"""contents_search (SQLite): prefix indexes for search words of 2 to 10 characters

A search word is a token prefix. Without an index of that prefix's length, FTS5 merges the
posting list of every token the prefix starts, whole, before any LIMIT applies, so a search's
window of newest matches cost more as items grew (2 ms of each search at 1M items). With
`prefix = '2 3 4 5 6 7 8 9 10'` such a word reads one posting list, lazily, newest first.

The table is rebuilt under a new name and renamed, keeping every entry's rowid, which
`contents_read.search` and search cursors refer to. PostgreSQL is untouched. Downgrading
rebuilds the table without the prefix indexes.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TOKENIZE = "tokenize = 'unicode61 remove_diacritics 2'"
_PREFIXES = "prefix = '2 3 4 5 6 7 8 9 10'"


def upgrade() -> None:
    _rebuild(f"{_TOKENIZE}, {_PREFIXES}")


def downgrade() -> None:
    _rebuild(_TOKENIZE)


def _rebuild(options: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # left behind by an interrupted run: SQLite may commit a CREATE VIRTUAL TABLE on its own
    op.execute("DROP TABLE IF EXISTS contents_search_rebuilt")
    op.execute(f"CREATE VIRTUAL TABLE contents_search_rebuilt USING fts5(title, body, {options})")
    op.execute(
        "INSERT INTO contents_search_rebuilt (rowid, title, body) "
        "SELECT rowid, title, body FROM contents_search"
    )
    op.execute("DROP TABLE contents_search")
    op.execute("ALTER TABLE contents_search_rebuilt RENAME TO contents_search")
