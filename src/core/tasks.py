"""Background tasks that stop when told to, even when a library swallows the cancellation.

A cancellation that arrives while redis-py waits on a socket does not always come out as
`CancelledError`: a pub/sub `get_message(timeout=…)` answers it as an empty read (seen), and a
command's timed read can report it as a `redis.exceptions.TimeoutError` (a sync loop retrying on
`RedisError` was seen still sleeping after its cancellation). A loop that retries on those
answers never sees its cancellation and runs on, and whoever awaits the task at shutdown waits
forever. So such a loop checks, in its error handler,
whether a cancellation is pending (`raise_if_cancelling`), and a task is always stopped with
a bounded wait (`cancel_and_wait`).
"""

from __future__ import annotations

import asyncio

from loguru import logger


def raise_if_cancelling() -> None:
    """Raise `CancelledError` when the running task has a cancellation request pending.

    For the error handler of a loop that retries: the error may be a cancellation that a
    library reported as an error of its own.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(task: asyncio.Task[object], timeout: float = 2.0) -> None:
    """Cancel `task` and wait for it to end, at most `timeout` seconds; never raises."""
    if task.done():
        return
    task.cancel()
    await asyncio.wait([task], timeout=timeout)
    if not task.done():
        logger.warning("task {} did not stop within {}s of its cancellation", task, timeout)
    elif not task.cancelled() and task.exception() is not None:
        logger.warning("task {} failed while stopping: {!r}", task, task.exception())
