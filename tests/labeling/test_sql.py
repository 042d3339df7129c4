"""labeling.sql: plain statements that must read and write exactly what the ORM would."""

from __future__ import annotations

import pytest
from django.db import connection

from labeling import sql
from labeling.models import Item, JudgeRun
from tests.labeling.factories import make_items, make_project

pytestmark = pytest.mark.django_db


def test_insert_and_update_write_what_save_would():
    project = make_project()
    (item,) = make_items(project, 1)
    inserted = sql.insert(JudgeRun(item=item, model="m", prompt_version="v1"))
    stored = JudgeRun.objects.get(pk=inserted.pk)
    assert (stored.status, stored.steps, stored.extra, stored.label) == ("streaming", [], {}, None)
    assert stored.started_at == inserted.started_at is not None  # auto_now_add, as save() sets it

    inserted.status, inserted.steps, inserted.extra = "completed", ["1. a", "2. b"], {"attempts": 2}
    inserted.label, inserted.error = "yes", "not written: not in the update"
    sql.update(inserted, ["status", "steps", "extra", "label"])
    stored = JudgeRun.objects.get(pk=inserted.pk)
    assert (stored.status, stored.steps, stored.extra, stored.label, stored.error) == (
        "completed", ["1. a", "2. b"], {"attempts": 2}, "yes", "")


def test_instances_reads_a_row_into_the_same_objects_as_the_orm():
    project = make_project()
    (item,) = make_items(project, 1)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql.columns(Item, 'i')}, 42 FROM labeling_item i WHERE i.id = %s", [item.pk])
        read, extra = sql.instances(cursor.fetchone(), Item)
    orm = Item.objects.get(pk=item.pk)
    assert extra == 42
    assert {f.attname: getattr(read, f.attname) for f in Item._meta.concrete_fields} == \
           {f.attname: getattr(orm, f.attname) for f in Item._meta.concrete_fields}
