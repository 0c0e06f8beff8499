"""A local OTLP/HTTP trace receiver for `make bench`: the tests' receiver in its own process.

Prints `OTLP_SINK <url>` once listening; on SIGTERM (or SIGINT) prints
`OTLP_SINK_RESULT {"spans": N, "exports": M}` and exits. Decoding runs here, not in the
server, so the server pays exactly what exporting to a collector costs it.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.observability.otlp import otlp_receiver


def main() -> None:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with otlp_receiver() as receiver:
        print(f"OTLP_SINK {receiver.url}", flush=True)
        stop.wait()
        result = {"spans": len(receiver.spans), "exports": len(receiver.paths)}
    print("OTLP_SINK_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
