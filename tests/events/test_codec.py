"""Every domain event of the code base survives the trip to JSON and back, unchanged."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import types
import typing
import uuid
from typing import Any

import pytest

import src.main  # noqa: F401 - imports every slice, so every event class is known
from src.core.events import DomainEvent
from src.core.outbox.codec import EventCodec, UnknownEventType, aggregate_of, event_classes

CLASSES = event_classes()


def sample(hint: Any, index: int) -> Any:
    """A value of type `hint`, different for each `index` (no None where a value fits)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return sample(options[0], index)
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        return allowed[index % len(allowed)]
    if origin is tuple:
        return tuple(sample(typing.get_args(hint)[0], index + i) for i in range(2))
    if origin is frozenset:
        return frozenset(sample(typing.get_args(hint)[0], index + i) for i in range(3))
    if hint is uuid.UUID:
        return uuid.uuid4()
    if hint is dt.datetime:
        return dt.datetime(2026, 12, 2, 12, 0, index, 123456, tzinfo=dt.UTC)
    if hint is str:
        return f"text-{index}-é"
    if hint is int:
        return index
    if hint is bool:
        return index % 2 == 0
    assert isinstance(hint, type), hint
    assert dataclasses.is_dataclass(hint), hint
    hints = typing.get_type_hints(hint)
    return hint(
        **{f.name: sample(hints[f.name], index + i) for i, f in enumerate(dataclasses.fields(hint))}
    )


def test_the_code_base_has_events_to_encode() -> None:
    names = {cls.__name__ for cls in CLASSES}
    assert {"UserSignedUp", "ContentCreated", "ContentPublished", "ProfileUpdated"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_event_round_trips_through_json(cls: type[DomainEvent]) -> None:
    codec = EventCodec.of_application()
    event = sample(cls, 1)
    type_name, payload = codec.encode(event)
    stored = json.loads(json.dumps(payload))  # what a JSON column or a stream entry keeps
    assert type_name == cls.__name__
    assert codec.decode(type_name, stored) == event


def test_a_set_always_encodes_the_same_way() -> None:
    from src.slices.users.events import ProfileUpdated

    codec = EventCodec.of_application()
    first = sample(ProfileUpdated, 3)
    again = dataclasses.replace(first, changed=frozenset(reversed(sorted(first.changed))))
    assert codec.encode(first) == codec.encode(again)


def test_an_unknown_type_name_is_refused() -> None:
    with pytest.raises(UnknownEventType):
        EventCodec.of_application().decode("NoSuchEvent", {})


def test_a_value_outside_its_literal_is_refused() -> None:
    from src.slices.users.events import RoleChanged

    codec = EventCodec.of_application()
    name, payload = codec.encode(sample(RoleChanged, 0))
    with pytest.raises(ValueError, match="is not one of"):
        codec.decode(name, {**payload, "role": "superuser"})


def test_two_classes_with_one_name_are_refused() -> None:
    first = type("Twin", (DomainEvent,), {})
    second = type("Twin", (DomainEvent,), {})
    with pytest.raises(ValueError, match="two event classes"):
        EventCodec(
            [dataclasses.dataclass(frozen=True)(first), dataclasses.dataclass(frozen=True)(second)]
        )


def test_content_events_are_ordered_by_their_item_and_user_events_by_their_user() -> None:
    from src.slices.content.events import ContentPublished
    from src.slices.users.events import PasswordChanged

    published = sample(ContentPublished, 0)
    changed = sample(PasswordChanged, 0)
    assert aggregate_of(published) == str(published.item.id)
    assert aggregate_of(changed) == str(changed.user_id)
