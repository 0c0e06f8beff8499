"""Inkwell under load: `make loadtest` runs this headless (see loadtests/run.py); for the web
UI, `.venv/bin/locust -f loadtests/locustfile.py --host http://127.0.0.1:8000`.

Four kinds of virtual users, mixed by weight: readers (7), newcomers (2), retrying clients (1),
followers (1).
Every request is validated (`catch_response=True`) and named by its route template.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenarios.follower import Follower
from scenarios.newcomer import Newcomer
from scenarios.readers import Reader
from scenarios.retrying import RetryingClient

__all__ = ["Follower", "Newcomer", "Reader", "RetryingClient"]
