"""Fresh request ids: 32 hex digits, never repeated, not even by a forked worker."""

from __future__ import annotations

import os
import re

from src.core.context import fresh_request_id

HEX_ID = re.compile(r"[0-9a-f]{32}")


def test_ids_are_32_hex_digits_and_never_repeat_across_reads_of_randomness() -> None:
    ids = [fresh_request_id() for _ in range(1_000)]  # several reads of 128 ids each

    assert all(HEX_ID.fullmatch(request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_hand_out_its_parents_next_ids() -> None:
    fresh_request_id.after_fork_in_child()  # a fresh read below, whatever ran before
    fresh_request_id()  # the parent holds 127 unread ids now
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's side
        try:
            os.write(writer, "".join(fresh_request_id() for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        child_ids = pipe.read()
    os.waitpid(child, 0)
    parent_ids = "".join(fresh_request_id() for _ in range(8))

    assert len(child_ids) == len(parent_ids) == 8 * 32
    assert {child_ids[i : i + 32] for i in range(0, 256, 32)}.isdisjoint(
        {parent_ids[i : i + 32] for i in range(0, 256, 32)}
    )
