"""`child_span`: a span under a recording parent, nothing at all under one that is not."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from src.core.spans import child_span

tracer = trace.get_tracer(__name__)


def test_under_a_recording_parent_a_child_span_is_recorded(
    recorded_spans: InMemorySpanExporter,
) -> None:
    with tracer.start_as_current_span("parent") as parent:
        assert parent.is_recording()
        with child_span(tracer, "child", attributes={"k": "v"}) as child:
            assert child is not parent
            assert trace.get_current_span() is child

    finished = {span.name: span for span in recorded_spans.get_finished_spans()}
    assert finished["child"].parent is not None
    assert finished["child"].parent.span_id == finished["parent"].context.span_id
    assert finished["child"].attributes == {"k": "v"}


def test_under_a_parent_that_does_not_record_nothing_is_opened(
    recorded_spans: InMemorySpanExporter,
) -> None:
    context = trace.SpanContext(0x1234, 0x5678, is_remote=False)
    unsampled = trace.NonRecordingSpan(context)
    with trace.use_span(unsampled), child_span(tracer, "child") as child:
        assert child is unsampled  # log lines keep the request's trace and span ids
        child.set_attribute("ignored", True)

    assert recorded_spans.get_finished_spans() == ()
