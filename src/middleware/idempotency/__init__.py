"""Idempotency-Key support: `keys` (parsing, fingerprints) and `store` (the records, in the
primary database, and their purge). The command boundary (`src/middleware/boundary.py`) uses
both: it claims a key before the command runs and stores the answer in the command's own
transaction."""
