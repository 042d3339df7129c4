"""Shared test set-up: isolated media/import folders, eager Celery unless a test runs a live worker."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data, or a clean skip when the checkout has none (a fresh clone)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared/data is only present on development and CI machines)")
    return path


@pytest.fixture(autouse=True)
def _isolated_storage(request, tmp_path_factory):
    try:
        settings = request.getfixturevalue("settings")
    except pytest.FixtureLookupError:
        yield
        return
    root = tmp_path_factory.mktemp("var")
    settings.MEDIA_ROOT = root / "media"
    settings.TRACELAB_IMPORT_DIR = root / "imports"
    from tracelab.celery import app

    live = request.node.get_closest_marker("live") is not None
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = not live
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Workers cache by primary key (models, run context); a test database rolled back reuses keys."""
    yield
    from labeling.services import artifacts, pipeline, runs

    artifacts._cache.clear()
    pipeline._run_contexts.clear()
    runs._expired_scans.clear()
