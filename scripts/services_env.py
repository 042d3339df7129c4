"""Print shell exports pointing the tests at PostgreSQL and Redis when they answer on loopback.

`make test` runs against the real services whenever they are reachable (CI always starts them);
otherwise it falls back to the embedded default (SQLite, eager Celery). Variables already set win.
"""

import os
import socket


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


if "DATABASE_URL" not in os.environ and reachable(5432):
    print("export DATABASE_URL=postgres://postgres@127.0.0.1:5432/tracelab")
if "REDIS_URL" not in os.environ and reachable(6379):
    print("export REDIS_URL=redis://127.0.0.1:6379/0")
