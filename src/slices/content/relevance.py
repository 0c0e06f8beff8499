"""Search by relevance, ranked within a window of the newest matches.

Ranking every match of a common word costs as much as there are matches (at 1,000,000 items a
word found in one item in twelve ranked 85,000 rows: 228 ms on PostgreSQL), so a search ranks
only its *window*: the newest `size` items whose text matches the words. Those come first, by
rank, then newest; the older matches follow them, newest first. Every page then costs about
`size` matches, whatever the size of the collection.

The first page fixes where the window starts (its oldest match) and every cursor carries that
start, so later pages rank the same window even while content is published between pages:
paging has no gaps or repeats. A cursor names the last row's place in the whole order: its
rank (`OLDER`, below every rank, for a match older than the window), `created_at`, `id`, the
window's start and, on SQLite, the row's own index entry.

Where the window is, per backend:

* PostgreSQL: by `(created_at, id)`, found by walking `ix_contents_read_status_created_at_id`
  newest first and testing each row's `tsvector` (the planner walks for a common word and
  sorts the few matches of a rare one). Rank: `ts_rank`, the title weighted above the body.
* SQLite: by the item's entry in the FTS5 table (`contents_read.search`), which numbers items
  in the order they were created; FTS5 walks its own index newest entry first, so the window
  and the older matches cost no scan of `contents_read`. Drafts have entries too and count
  towards the window (they are never answered). Rank: how many of the words the title holds.
  A word matches as a prefix; the table's prefix indexes (2-10 characters, migration 0015)
  make that one posting list read newest first. A word of 1 or of more than 10 characters
  has none, and FTS5 merges the whole posting list of every token it starts: that search
  still grows with its matches (≈ 3 ms for 95,000 of them at 1M items).

The words, the filters (`author_id`, `tag`) and publication narrow what is answered; the
window is the newest matches of the words alone, so it is the same for every filter.
"""

from __future__ import annotations

import datetime as dt
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, literal, literal_column, select, tuple_
from sqlalchemy.engine import Row
from sqlalchemy.sql.expression import ColumnCollection

from src.core.db.read import ReadHandle
from src.core.pagination import PositionShape
from src.core.tables import contents_read, contents_search
from src.slices.content.rules import PUBLISHED

OLDER = -1.0  # the rank of a match older than the window: below every rank in it

_NEWEST_KEY = tuple_(contents_read.c.created_at, contents_read.c.id)  # PostgreSQL's position
_fts_entry = contents_search.c.rowid  # SQLite's position: the item's full-text entry

Narrowing = Callable[[ColumnCollection[str, Any]], list[ColumnElement[bool]]]
"""The filters' conditions on the columns of `contents_read` or of a query over it."""

Position = Callable[[Any], tuple[Any, ...]]


def fts5_phrase(term: str) -> str:
    """One search word as an FTS5 prefix phrase: quoted, so it is never query syntax."""
    return '"' + term.replace('"', '""') + '"*'


@dataclass(frozen=True, slots=True)
class RankedPage:
    """Up to `limit + 1` rows in the search's order, and each row's cursor position."""

    rows: Sequence[Row[Any]]
    position: Position


class SearchWindow(ABC):
    """A backend's ranked search. `shape` is its cursors' (see the module's docstring);
    `everything` the window start that means the window holds every match."""

    shape: PositionShape
    everything: Any

    def __init__(self, state_columns: Sequence[ColumnElement[Any]], size: int) -> None:
        self.state_columns = tuple(state_columns)
        self.size = size

    async def page(
        self,
        read: ReadHandle,
        terms: tuple[str, ...],
        narrowing: Narrowing,
        after: tuple[Any, ...] | None,
        limit: int,
    ) -> RankedPage:
        """The page after `after` (a decoded cursor; None: the first page): what is left
        of the window, by rank, then as many of the older matches as the page has room for."""
        older_after = None
        if after is None:
            rows, start = await self._first_page(read, terms, narrowing, limit)
        else:
            start = self._start_of(after)
            if after[0] == OLDER:  # past the window already
                rows, older_after = [], self._older_position_of(after)
            else:
                window = self._in_window(terms, narrowing, start)
                rows = list(await read.all(_ranked_page(*window, after[:3], limit)))
        if len(rows) <= limit and start != self.everything:
            older = self._older(terms, narrowing, start, older_after, limit + 1 - len(rows))
            rows = [*rows, *await read.all(older)]
        return RankedPage(rows, lambda row: self._position(row, start))

    @abstractmethod
    async def _first_page(
        self, read: ReadHandle, terms: tuple[str, ...], narrowing: Narrowing, limit: int
    ) -> tuple[list[Row[Any]], Any]:
        """The first page and where its window starts."""

    @abstractmethod
    def _in_window(
        self, terms: tuple[str, ...], narrowing: Narrowing, start: Any
    ) -> tuple[Select[Any], ColumnElement[Any]]:
        """The window's answerable matches with their rank (the select list's `rank`)."""

    @abstractmethod
    def _older(
        self,
        terms: tuple[str, ...],
        narrowing: Narrowing,
        start: Any,
        after: Any,
        rows: int,
    ) -> Select[Any]:
        """Up to `rows` answerable matches older than the window, newest first, after the
        older match `after` (None: from the window's start)."""

    @abstractmethod
    def _start_of(self, after: tuple[Any, ...]) -> Any:
        """The window's start a cursor carries."""

    @abstractmethod
    def _older_position_of(self, after: tuple[Any, ...]) -> Any:
        """Where an older match's cursor is in the newest-first order of the older ones."""

    @abstractmethod
    def _position(self, row: Any, start: Any) -> tuple[Any, ...]:
        """The cursor position of `row` in a search whose window starts at `start`."""


class _PostgresWindow(SearchWindow):
    # rank, created_at, id, and the window's start: (created_at, id) of its oldest match
    shape = (float, dt.datetime, uuid.UUID, dt.datetime, uuid.UUID)
    everything = (dt.datetime(1, 1, 1, tzinfo=dt.UTC), uuid.UUID(int=0))

    @staticmethod
    def _words(terms: tuple[str, ...]) -> tuple[ColumnElement[Any], ColumnElement[bool]]:
        words = func.plainto_tsquery(literal_column("'english'::regconfig"), " ".join(terms))
        return words, contents_read.c.search.op("@@")(words)

    async def _first_page(
        self, read: ReadHandle, terms: tuple[str, ...], narrowing: Narrowing, limit: int
    ) -> tuple[list[Row[Any]], Any]:
        """One statement (two when the filters keep none of it): the newest `size`
        matches, ranked; the window functions (its
        start, its size) run over those rows alone."""
        words, matches = self._words(terms)
        newest = (
            select(*self.state_columns, contents_read.c.search)
            .where(matches, contents_read.c.status == PUBLISHED)
            .order_by(contents_read.c.created_at.desc(), contents_read.c.id.desc())
            .limit(self.size)
            .subquery("newest")
        )
        oldest_first = (newest.c.created_at, newest.c.id)
        window = select(
            *(newest.c[column.name] for column in self.state_columns),
            func.ts_rank(newest.c.search, words).label("rank"),
            func.first_value(newest.c.created_at).over(order_by=oldest_first).label("start_at"),
            func.first_value(newest.c.id).over(order_by=oldest_first).label("start_id"),
            func.count().over().label("window_rows"),
        ).subquery("window")
        rows = list(
            await read.all(
                select(window)
                .where(*narrowing(window.c))
                .order_by(window.c.rank.desc(), window.c.created_at.desc(), window.c.id.desc())
                .limit(limit + 1)
            )
        )
        if rows:
            first = rows[0]
            if first.window_rows < self.size:
                return rows, self.everything
            return rows, (first.start_at, first.start_id)
        # The filters kept nothing of the window: where it starts is still needed.
        start = await read.first(
            select(contents_read.c.created_at, contents_read.c.id)
            .where(matches, contents_read.c.status == PUBLISHED)
            .order_by(contents_read.c.created_at.desc(), contents_read.c.id.desc())
            .offset(self.size - 1)
            .limit(1)
        )
        return rows, self.everything if start is None else (start.created_at, start.id)

    def _in_window(
        self, terms: tuple[str, ...], narrowing: Narrowing, start: Any
    ) -> tuple[Select[Any], ColumnElement[Any]]:
        words, matches = self._words(terms)
        rank = func.ts_rank(contents_read.c.search, words).label("rank")
        query = (
            select(*self.state_columns, rank)
            .where(matches, contents_read.c.status == PUBLISHED)
            .where(*narrowing(contents_read.c))
        )
        if start != self.everything:
            query = query.where(tuple_(*start) <= _NEWEST_KEY)
        return query, rank

    def _older(
        self, terms: tuple[str, ...], narrowing: Narrowing, start: Any, after: Any, rows: int
    ) -> Select[Any]:
        _, matches = self._words(terms)
        query = (
            select(*self.state_columns, literal(OLDER).label("rank"))
            .where(matches, contents_read.c.status == PUBLISHED, tuple_(*start) > _NEWEST_KEY)
            .where(*narrowing(contents_read.c))
            .order_by(contents_read.c.created_at.desc(), contents_read.c.id.desc())
            .limit(rows)
        )
        return query if after is None else query.where(tuple_(*after) > _NEWEST_KEY)

    def _start_of(self, after: tuple[Any, ...]) -> Any:
        return (after[3], after[4])

    def _older_position_of(self, after: tuple[Any, ...]) -> Any:
        return (after[1], after[2])

    def _position(self, row: Any, start: Any) -> tuple[Any, ...]:
        return (float(row.rank), row.created_at, row.id, *start)


class _SQLiteWindow(SearchWindow):
    # rank, created_at, id, the window's start (its oldest entry) and the row's own entry
    shape = (float, dt.datetime, uuid.UUID, int, int)
    everything = 0  # entries are numbered from 1

    async def _first_page(
        self, read: ReadHandle, terms: tuple[str, ...], narrowing: Narrowing, limit: int
    ) -> tuple[list[Row[Any]], Any]:
        """One statement (two when the filters keep none of it): FTS5 hands over its
        newest `size` matching entries, and only
        those are joined and ranked."""
        matches = _words_match(terms)
        newest = (
            select(_fts_entry.label("entry"))
            .select_from(contents_search)
            .where(matches)
            .order_by(_fts_entry.desc())
            .limit(self.size)
            .cte("newest")
        )
        start = select(func.min(newest.c.entry)).scalar_subquery()
        rank = _title_rank(terms, start).label("rank")
        query = (
            select(
                *self.state_columns,
                rank,
                newest.c.entry,
                start.label("start_entry"),
                select(func.count()).select_from(newest).scalar_subquery().label("window_rows"),
            )
            .select_from(newest.join(contents_read, contents_read.c.search == newest.c.entry))
            .where(contents_read.c.status == PUBLISHED)
            .where(*narrowing(contents_read.c))
        )
        rows = list(await read.all(_ranked_page(query, rank, None, limit)))
        if rows:
            first = rows[0]
            return rows, self.everything if first.window_rows < self.size else first.start_entry
        # The filters kept nothing of the window: where it starts is still needed.
        oldest = await read.scalar(
            select(_fts_entry)
            .select_from(contents_search)
            .where(matches)
            .order_by(_fts_entry.desc())
            .offset(self.size - 1)
            .limit(1)
        )
        return rows, self.everything if oldest is None else int(oldest)

    def _in_window(
        self, terms: tuple[str, ...], narrowing: Narrowing, start: Any
    ) -> tuple[Select[Any], ColumnElement[Any]]:
        rank = _title_rank(terms, literal(start)).label("rank")
        query = (
            select(*self.state_columns, rank, _fts_entry.label("entry"))
            .select_from(_indexed_items())
            .where(_words_match(terms), start <= _fts_entry, contents_read.c.status == PUBLISHED)
            .where(*narrowing(contents_read.c))
        )
        return query, rank

    def _older(
        self, terms: tuple[str, ...], narrowing: Narrowing, start: Any, after: Any, rows: int
    ) -> Select[Any]:
        query = (
            select(*self.state_columns, literal(OLDER).label("rank"), _fts_entry.label("entry"))
            .select_from(_indexed_items())
            .where(_words_match(terms), start > _fts_entry, contents_read.c.status == PUBLISHED)
            .where(*narrowing(contents_read.c))
            .order_by(_fts_entry.desc())
            .limit(rows)
        )
        return query if after is None else query.where(after > _fts_entry)

    def _start_of(self, after: tuple[Any, ...]) -> Any:
        return after[3]

    def _older_position_of(self, after: tuple[Any, ...]) -> Any:
        return after[4]

    def _position(self, row: Any, start: Any) -> tuple[Any, ...]:
        return (float(row.rank), row.created_at, row.id, start, row.entry)


def _ranked_page(
    query: Select[Any], rank: ColumnElement[Any], after: tuple[Any, ...] | None, limit: int
) -> Select[Any]:
    """`query` most relevant first, then newest, after the position `after`. `rank` is the
    select list's labelled column: ORDER BY names it, so it is not computed twice."""
    order = (rank, contents_read.c.created_at, contents_read.c.id)
    query = query.order_by(*(column.desc() for column in order))
    if after is not None:
        query = query.where(tuple_(*order) < tuple(after))
    return query.limit(limit + 1)


def _words_match(terms: tuple[str, ...]) -> ColumnElement[bool]:
    """Every one of `terms` is in the item's title or body (each as a prefix)."""
    return _fts5_match(" ".join(fts5_phrase(term) for term in terms))


def _fts5_match(expression: str) -> ColumnElement[bool]:
    matched: ColumnElement[bool] = literal_column("contents_search").op("MATCH")(expression)
    return matched


def _indexed_items() -> Any:
    return contents_search.join(contents_read, contents_read.c.search == _fts_entry)


def _title_rank(terms: tuple[str, ...], start: ColumnElement[Any]) -> ColumnElement[Any]:
    """How many of `terms` the title of `contents_read`'s row holds, looked up among the
    entries from `start` on (the window's), so no more of the index is read than needed."""

    def in_title(term: str) -> ColumnElement[Any]:
        titles = (
            select(_fts_entry)
            .select_from(contents_search)
            .where(_fts5_match(f"title : {fts5_phrase(term)}"), _fts_entry >= start)
            .correlate(None)  # its own scan of the index, not the outer query's row
        )
        return case((contents_read.c.search.in_(titles.scalar_subquery()), 1), else_=0)

    return sum((in_title(term) for term in terms[1:]), in_title(terms[0]))


def search_window(
    dialect: str, state_columns: Sequence[ColumnElement[Any]], size: int
) -> SearchWindow:
    """The ranked search of this backend, ranking the newest `size` matches."""
    if dialect == "postgresql":
        return _PostgresWindow(state_columns, size)
    return _SQLiteWindow(state_columns, size)
