"""The CLI calls the same services as the API."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Item
from tests.labeling.factories import jsonl, make_project

pytestmark = pytest.mark.django_db


def test_import_then_export_on_the_command_line(tmp_path, capsys):
    project = make_project(kind="text")
    source = tmp_path / "items.jsonl"
    source.write_bytes(jsonl([{"external_id": f"c{k}", "text": f"t{k}", "label": "yes"} for k in range(3)]))
    call_command("import_items", project.pk, str(source), verbosity=0)
    assert Item.objects.filter(project=project, state="human_labeled").count() == 3
    out = tmp_path / "out.jsonl"
    call_command("export_items", project.pk, "--format", "jsonl", "--output", str(out), verbosity=0)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["final"]) for r in records] == [(f"c{k}", {"label": "yes", "source": "human"}) for k in range(3)]


def test_a_bad_file_fails_the_command_and_names_line_and_field(tmp_path, capsys):
    project = make_project(kind="text")
    source = tmp_path / "bad.jsonl"
    source.write_bytes(jsonl([{"external_id": "a", "text": "x"}, {"external_id": "b", "text": {"no": 1}}]))
    with pytest.raises(CommandError, match="failed: 0 of 2 rows imported, 1 error"):
        call_command("import_items", project.pk, str(source), verbosity=0)
    assert "bad.jsonl: line 2: text: must be a string or a number, got an object" in capsys.readouterr().err
