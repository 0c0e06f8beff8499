"""Cursor positions: any shape of timestamps, ids and numbers, exact, signed and checked."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from src.core.errors.types import ValidationFailed
from src.core.pagination import NEWEST_FIRST, CursorCodec

codec = CursorCodec("a-secret-for-the-cursor-tests")
MOMENT = dt.datetime(2026, 5, 17, 8, 30, 0, 123456, tzinfo=dt.UTC)
ROW = uuid.UUID("12345678-1234-5678-1234-567812345678")


def test_a_newest_first_position_round_trips() -> None:
    assert codec.decode(codec.encode(MOMENT, ROW)) == (MOMENT, ROW)
    assert codec.decode(codec.encode(MOMENT, ROW), NEWEST_FIRST) == (MOMENT, ROW)


@pytest.mark.parametrize("rank", [0.0607927106320858, 1e-20, 0.1 + 0.2, 3.0, 0])
def test_a_rank_survives_the_round_trip_exactly(rank: float) -> None:
    shape = (float, dt.datetime, uuid.UUID)
    decoded = codec.decode(codec.encode(rank, MOMENT, ROW), shape)
    assert decoded == (rank, MOMENT, ROW)
    assert isinstance(decoded[0], float)


@pytest.mark.parametrize(
    ("position", "shape"),
    [
        ((MOMENT, ROW), (float, dt.datetime, uuid.UUID)),  # another list's cursor
        ((1.5, MOMENT, ROW), NEWEST_FIRST),
        ((ROW, MOMENT), NEWEST_FIRST),  # right length, wrong types
        ((1.5, MOMENT, ROW), (int, dt.datetime, uuid.UUID)),
    ],
)
def test_a_position_of_another_shape_is_422(
    position: tuple[object, ...], shape: tuple[type, ...]
) -> None:
    cursor = codec.encode(*position)  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed):
        codec.decode(cursor, shape)


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), "text", None])
def test_only_timestamps_ids_and_finite_numbers_are_encoded(value: object) -> None:
    with pytest.raises(TypeError):
        codec.encode(value, MOMENT)  # type: ignore[arg-type]
