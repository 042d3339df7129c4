"""Persist fitted scorers and routers (the app stores the bytes as versioned artifacts)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import joblib

import routing

__all__ = ["dump_model_bytes", "load_model", "load_model_bytes", "save_model"]

_FORMAT = "tracelab-routing-model/1"


def save_model(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write a fitted scorer/router (or any picklable routing object) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"format": _FORMAT, "version": routing.__version__, "model": obj}, path, compress=3)
    return path


def load_model(path: str | os.PathLike[str]) -> Any:
    """Read an object written by ``save_model``. Only load files you wrote: this unpickles."""
    payload = joblib.load(path)
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a tracelab routing model file")
    return payload["model"]


def dump_model_bytes(obj: Any) -> bytes:
    """``save_model`` into bytes (for storing in a database or object store)."""
    buffer = io.BytesIO()
    joblib.dump({"format": _FORMAT, "version": routing.__version__, "model": obj}, buffer, compress=3)
    return buffer.getvalue()


def load_model_bytes(data: bytes) -> Any:
    payload = joblib.load(io.BytesIO(data))
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError("not a tracelab routing model payload")
    return payload["model"]
