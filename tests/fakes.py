"""A fake unit of work for use-case tests: records what a use case asked of its transaction.

Statements are answered from a script of results (one per `execute`), so a use case can be
driven through its branches without a database; `committed()` plays the boundary's part.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from src.core.db.uow import AfterCommitHook
from src.core.events import DomainEvent


class FakeResult:
    def __init__(self, rows: Sequence[Any] = (), rowcount: int = 1) -> None:
        self._rows = list(rows)
        self.rowcount = rowcount  # rows a write affected

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        assert len(self._rows) == 1
        return self._rows[0]

    def all(self) -> list[Any]:
        return self._rows

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None


class FakeUnitOfWork:
    dialect = "sqlite"

    def __init__(
        self, results: Sequence[FakeResult | BaseException] = (), reads: Sequence[FakeResult] = ()
    ) -> None:
        self._results = list(results)
        self._reads = list(reads)
        self.statements: list[Any] = []
        self.events: list[DomainEvent] = []
        self.hooks: list[AfterCommitHook] = []

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        self.statements.append(statement)
        answer = self._results.pop(0) if self._results else FakeResult()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def emit(self, event: DomainEvent) -> None:
        self.events.append(event)

    def after_commit(self, hook: AfterCommitHook) -> None:
        self.hooks.append(hook)

    def reader(self) -> contextlib.AbstractAsyncContextManager[Any]:
        reads = self._reads

        @contextlib.asynccontextmanager
        async def connection() -> AsyncIterator[Any]:
            class Reader:
                async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
                    return reads.pop(0) if reads else FakeResult()

            yield Reader()

        return connection()

    async def committed(self) -> None:
        """What the boundary does after a successful command: run the after-commit hooks."""
        for hook in self.hooks:
            await hook()


def counter() -> tuple[Any, Callable[[], dict[str, int]]]:
    """A stand-in for a labelled prometheus Counter, and a reader of its counts."""
    counts: dict[str, int] = {}

    class Labelled:
        def __init__(self, label: str) -> None:
            self.label = label

        def inc(self) -> None:
            counts[self.label] = counts.get(self.label, 0) + 1

    class Counter:
        def labels(self, *values: str, **labels: str) -> Labelled:
            return Labelled(",".join([*values, *labels.values()]))

    return Counter(), lambda: dict(counts)
