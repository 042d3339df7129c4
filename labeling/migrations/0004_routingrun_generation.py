"""RoutingRun.generation: bumped by every start and resume, carried by the run's routing tasks.

On SQLite, Django adds a NOT NULL column by copying the table and renaming the copy, which SQLite refuses
here: the tally triggers of 0002 name labeling_routingrun. A plain ADD COLUMN keeps the table and its
triggers; PostgreSQL takes Django's usual AddField.
"""

from django.db import migrations, models


def generation_field() -> models.PositiveIntegerField:
    field = models.PositiveIntegerField(
        default=0, help_text="Bumped by every start and resume: routing tasks enqueued before it end.")
    field.set_attributes_from_name("generation")
    return field


def add_generation(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute('ALTER TABLE "labeling_routingrun" ADD COLUMN "generation" integer unsigned '
                              'NOT NULL DEFAULT 0 CHECK ("generation" >= 0)')
    else:
        schema_editor.add_field(apps.get_model("labeling", "RoutingRun"), generation_field())


def drop_generation(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute('ALTER TABLE "labeling_routingrun" DROP COLUMN "generation"')
    else:
        schema_editor.remove_field(apps.get_model("labeling", "RoutingRun"), generation_field())


class Migration(migrations.Migration):

    dependencies = [
        ("labeling", "0003_item_project_keyset"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddField(model_name="routingrun", name="generation",
                                                  field=generation_field())],
            database_operations=[migrations.RunPython(add_generation, drop_generation)],
        ),
    ]
