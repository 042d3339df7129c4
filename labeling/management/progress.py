"""A progress bar that follows a routing run until it ends (the run may be routed by other workers)."""

from __future__ import annotations

import time

from tqdm import tqdm

from labeling.models import RoutingRun
from labeling.selectors import run_progress


def follow_run(run: RoutingRun, *, disable: bool = False, poll_seconds: float = 0.5) -> dict:
    progress = run_progress(run=run)
    with tqdm(total=progress["items"], unit=" items", desc=f"run {run.pk}", disable=disable) as bar:
        while True:
            run.refresh_from_db()
            progress = run_progress(run=run)
            bar.update(progress["finished"] - bar.n)
            if run.state not in (RoutingRun.State.RUNNING, RoutingRun.State.PENDING):
                return progress
            time.sleep(poll_seconds)
