"""The error model, one module a job: `types` (the error classes), `problems` (RFC 9457
rendering), `openapi` (documenting problems in the schema), `handlers` (exception handlers)."""
