"""Domain events as JSON, and back.

An event is a frozen dataclass; its fields are plain values (str, int, bool, None), UUIDs,
aware datetimes, tuples, frozensets, literals (a `Role`) and nested frozen dataclasses (a
`ContentState`). Encoding walks the values; decoding walks the field types (resolved once per
class), so a payload comes back as an equal event. The type name stored beside the payload is
the class name: it must stay stable once events of that class have been written (a rename
would leave undeliverable rows), and it must be unique among the classes a codec knows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import types
import typing
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from src.core.events import DomainEvent

Decoder = Callable[[Any], Any]


class UnknownEventType(LookupError):
    """A stored event whose type no codec class carries (a removed or renamed event)."""


def event_classes(root: type[DomainEvent] = DomainEvent) -> list[type[DomainEvent]]:
    """Every concrete event class of the application (the `src` package) imported so far."""
    found: list[type[DomainEvent]] = []
    pending = list(root.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        # `dataclass(slots=True)` replaces the class it decorates; the one the module names is
        # the event class, the other is a leftover subclass until it is garbage-collected.
        module = sys.modules.get(cls.__module__)
        if (
            cls.__module__.startswith("src.")
            and dataclasses.is_dataclass(cls)
            and getattr(module, cls.__qualname__, None) is cls
        ):
            found.append(cls)
    return sorted(found, key=lambda cls: cls.__name__)


def encode_value(value: Any) -> Any:
    """A JSON-ready copy of `value` (see the module docstring for what may appear)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not encoded; events carry UTC-aware values")
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, frozenset | set):
        # sorted: the same set always gives the same payload
        return sorted((encode_value(item) for item in value), key=repr)
    if isinstance(value, tuple | list):
        return [encode_value(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise TypeError(f"an event field of type {type(value).__name__} cannot be encoded")


def _decoder(hint: Any) -> Decoder:
    """How to turn the JSON form of a value of type `hint` back into the value."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return lambda value: value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = _decoder(options[0]) if len(options) == 1 else (lambda value: value)
        return lambda value: None if value is None else inner(value)
    if origin is typing.Literal:
        allowed = typing.get_args(hint)

        def literal(value: Any) -> Any:
            if value not in allowed:
                raise ValueError(f"{value!r} is not one of {allowed!r}")
            return value

        return literal
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return lambda value: tuple(item(v) for v in value)
        items = [_decoder(a) for a in args]
        return lambda value: tuple(d(v) for d, v in zip(items, value, strict=True))
    if origin in (frozenset, set):
        (arg,) = typing.get_args(hint)
        item = _decoder(arg)
        kind = frozenset if origin is frozenset else set
        return lambda value: kind(item(v) for v in value)
    if origin is list:
        (arg,) = typing.get_args(hint)
        item = _decoder(arg)
        return lambda value: [item(v) for v in value]
    if hint is uuid.UUID:
        return uuid.UUID
    if hint is dt.datetime:
        return dt.datetime.fromisoformat
    if hint is dt.date:
        return dt.date.fromisoformat
    if hint in (str, int, float, bool):
        return lambda value: hint(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_decoder(hint)
    raise TypeError(f"an event field of type {hint!r} cannot be decoded")


def _dataclass_decoder(cls: type[Any]) -> Decoder:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, _decoder(hints[f.name])) for f in dataclasses.fields(cls) if f.init]

    def decode(value: Any) -> Any:
        return cls(**{name: decode_field(value[name]) for name, decode_field in fields})

    return decode


def aggregate_of(event: DomainEvent) -> str | None:
    """The id of the thing an event is about, which orders its delivery: events of one
    aggregate are handled one at a time, in commit order; others may overtake them.

    An event names it with an `aggregate_id` property, or it is the id of its `item`, or its
    `user_id`; an event with none has no order to keep.
    """
    explicit = getattr(event, "aggregate_id", None)
    if explicit is not None:
        return str(explicit)
    item = getattr(event, "item", None)
    if item is not None and getattr(item, "id", None) is not None:
        return str(item.id)
    user_id = getattr(event, "user_id", None)
    return str(user_id) if user_id is not None else None


class EventCodec:
    """Encodes and decodes the events of the classes it is built with."""

    def __init__(self, classes: Iterable[type[DomainEvent]]) -> None:
        self._by_name: dict[str, type[DomainEvent]] = {}
        self._decoders: dict[str, Decoder] = {}
        for cls in classes:
            name = cls.__name__
            known = self._by_name.get(name)
            if known is not None and known is not cls:
                raise ValueError(f"two event classes are named {name!r}: {known} and {cls}")
            self._by_name[name] = cls
            self._decoders[name] = _dataclass_decoder(cls)

    @classmethod
    def of_application(cls) -> EventCodec:
        return cls(event_classes())

    @property
    def type_names(self) -> frozenset[str]:
        return frozenset(self._by_name)

    def type_name(self, event: DomainEvent) -> str:
        name = type(event).__name__
        if self._by_name.get(name) is not type(event):
            raise UnknownEventType(f"{type(event)} is not an event class this codec knows")
        return name

    def encode(self, event: DomainEvent) -> tuple[str, dict[str, Any]]:
        """The event's type name and its JSON-ready payload."""
        payload: dict[str, Any] = encode_value(event)
        return self.type_name(event), payload

    def decode(self, type_name: str, payload: dict[str, Any]) -> DomainEvent:
        decoder = self._decoders.get(type_name)
        if decoder is None:
            raise UnknownEventType(f"no event class is named {type_name!r}")
        event: DomainEvent = decoder(payload)
        return event

    def event_type(self, type_name: str) -> type[DomainEvent]:
        found = self._by_name.get(type_name)
        if found is None:
            raise UnknownEventType(f"no event class is named {type_name!r}")
        return found
