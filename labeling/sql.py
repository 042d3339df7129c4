"""Model instances from one hand-written SELECT, for the per-request reads of the hot API paths.

Building a query with the ORM (cloning querysets, compiling the SQL) costs about 1 ms of CPU per query on the
2-core machine, ten times what sending the same statement through a cursor costs; a review-queue claim made
four such reads per request. ``columns`` lists a model's columns for a SELECT; ``instances`` turns the fetched
row back into model instances the way the ORM does, with the ORM's own converters (JSON decoded; on SQLite
dates and booleans parsed), so callers get the same objects either way.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Model

BIGINT_MAX = 2**63 - 1  # primary keys are bigint: a larger id matches no row (the ORM answers "no row" too)


@cache  # a process talks to one database backend, so the quoting never changes
def columns(model: type[Model], alias: str) -> str:
    """``alias."col", …``: every concrete column of ``model``, in field order."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields)


def instances(row: tuple, *models: type[Model]) -> tuple[Any, ...]:
    """Split ``row`` (selected with ``columns`` of each of ``models``, in order, then any further values) into
    one instance per model (None when its primary key is NULL: a LEFT JOIN that matched nothing), followed by
    the further values as they came."""
    db = connections[DEFAULT_DB_ALIAS]  # this thread's connection, once (``connection`` looks it up per use)
    out: list[Any] = []
    start = 0
    for model in models:
        fields = model._meta.concrete_fields
        values = list(row[start:start + len(fields)])
        start += len(fields)
        if values[fields.index(model._meta.pk)] is None:
            out.append(None)
            continue
        for k, field in enumerate(fields):
            column = field.cached_col
            for convert in db.ops.get_db_converters(column) + field.get_db_converters(db):
                values[k] = convert(values[k], column, db)
        out.append(model.from_db(db.alias, [field.attname for field in fields], values))
    return (*out, *row[start:])
