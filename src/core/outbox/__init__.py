"""The transactional outbox and its delivery to event handlers.

* `codec`: every domain event to and from JSON, under a stable type name;
* `recorder`: the unit of work's event recorder that writes each event to `outbox` in the
  command's transaction;
* `delivery`: applying one event — each subscribed handler in its own transaction that also
  records `(handler, event_id)` in `processed_events`;
* `runner`: the embedded default (no Redis): the serve process delivers from the outbox table;
* `stream`: with Redis, the relay (outbox → stream) and the consumer group (`inkwell worker`).
"""
