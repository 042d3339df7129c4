"""Plain statements for the hot paths: model instances from one hand-written SELECT, and one instance's
INSERT or UPDATE as ``save()`` would write it.

Building a query with the ORM (cloning querysets, compiling the SQL) costs about 1 ms of CPU per query on the
2-core machine, ten times what sending the same statement through a cursor costs; a review-queue claim made
four such reads per request. ``columns`` lists a model's columns for a SELECT; ``instances`` turns the fetched
row back into model instances the way the ORM does, with the ORM's own converters (JSON decoded; on SQLite
dates and booleans parsed), so callers get the same objects either way. ``insert`` and ``update`` prepare
values with the fields' own ``pre_save`` and ``get_db_prep_save``, as ``save()`` does (the models here
have no save signals).
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


def insert(instance: Model, *, with_cte: tuple[str, list] | None = None) -> Model:
    """INSERT ``instance`` as a new row (``save()`` for a new instance) and set its primary key.

    ``with_cte``: (``name AS (…)``, its parameters), a data-modifying CTE run in the same statement
    (PostgreSQL only), e.g. closing the task a label is written for."""
    model = type(instance)
    fields = _insert_fields(model)
    values = [field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in fields]
    statement, params = _insert_sql(model), values
    if with_cte is not None:
        statement, params = f"WITH {with_cte[0]} {statement}", [*with_cte[1], *values]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        instance.pk = cursor.fetchone()[0]
    instance._state.adding, instance._state.db = False, connection.alias
    return instance


def update(instance: Model, fields: list[str]) -> None:
    """UPDATE ``fields`` of ``instance``'s row (``save(update_fields=fields)``)."""
    model = type(instance)
    chosen = [model._meta.get_field(name) for name in fields]
    values = [field.get_db_prep_save(field.pre_save(instance, add=False), connection) for field in chosen]
    with connection.cursor() as cursor:
        cursor.execute(_update_sql(model, tuple(fields)), [*values, instance.pk])


@cache
def _insert_fields(model: type[Model]) -> list:
    return [field for field in model._meta.concrete_fields if not field.primary_key]


@cache
def _insert_sql(model: type[Model]) -> str:
    quote = connection.ops.quote_name
    fields = _insert_fields(model)
    return (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {quote(model._meta.pk.column)}")


@cache
def _update_sql(model: type[Model], fields: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(model._meta.get_field(name).column)} = %s" for name in fields)
    return f"UPDATE {quote(model._meta.db_table)} SET {sets} WHERE {quote(model._meta.pk.column)} = %s"
