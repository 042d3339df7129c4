"""Tallies: the running totals behind the dashboard (see ``labeling.models.Tally``), kept by triggers.

Each counted table gets triggers that append signed deltas for what a statement changed: +1 (and the
amounts) for every new row, −1 for every old one, grouped by (project, batch, run, key). PostgreSQL uses
statement-level triggers with transition tables (a COPY of 2,000 items adds two rows, not 2,000);
SQLite, whose writers take turns, uses row-level triggers. The existing rows are counted once at the end.

The SQL is generated from ``TALLIES`` below and frozen with this migration.
"""

from django.conf import settings
from django.db import migrations, models

# (table, columns the expressions read from the changed rows, [tally expressions]). In each expression
# ``r`` is the changed row; joins reach the tables whose rows outlive it (an item outlives its judge runs).
# An expression: project, batch, run, key, n, amount, joins, condition.
TALLIES = [
    ("labeling_item", ["id", "project_id", "batch_id", "state", "final_source"], [
        ("r.project_id", "COALESCE(r.batch_id, 0)", "0", "'state:' || r.state", "1", "0", "", "TRUE"),
        ("r.project_id", "COALESCE(r.batch_id, 0)", "0", "'source:' || r.final_source", "1", "0", "",
         "r.final_source IS NOT NULL"),
    ]),
    ("labeling_runitem", ["id", "run_id", "state"], [
        ("x.project_id", "0", "r.run_id", "'runitem:' || r.state", "1", "0",
         "JOIN labeling_routingrun x ON x.id = r.run_id", "TRUE"),
    ]),
    ("labeling_judgerun", ["id", "item_id", "run_id", "status", "output_tokens", "input_tokens", "latency_ms",
                           "stopped_at_step"], [
        ("i.project_id", "0", "COALESCE(r.run_id, 0)", "'judge:' || r.status", "1", "COALESCE(r.output_tokens, 0)",
         "JOIN labeling_item i ON i.id = r.item_id", "TRUE"),
        ("i.project_id", "0", "COALESCE(r.run_id, 0)", "'judge_output_known:' || r.status", "1", "0",
         "JOIN labeling_item i ON i.id = r.item_id", "r.output_tokens IS NOT NULL"),
        ("i.project_id", "0", "COALESCE(r.run_id, 0)", "'judge_input'", "1", "COALESCE(r.input_tokens, 0)",
         "JOIN labeling_item i ON i.id = r.item_id", "TRUE"),
        ("i.project_id", "0", "COALESCE(r.run_id, 0)", "'judge_latency_ms'", "1", "COALESCE(r.latency_ms, 0)",
         "JOIN labeling_item i ON i.id = r.item_id", "TRUE"),
        ("i.project_id", "0", "COALESCE(r.run_id, 0)", "'stop_step:' || r.stopped_at_step", "1", "0",
         "JOIN labeling_item i ON i.id = r.item_id",
         "r.status = 'stopped_early' AND r.stopped_at_step IS NOT NULL"),
    ]),
    ("labeling_routerdecision", ["id", "judge_run_id", "step"], [
        ("i.project_id", "0", "COALESCE(j.run_id, 0)", "'router_call'", "1", "0",
         "JOIN labeling_judgerun j ON j.id = r.judge_run_id JOIN labeling_item i ON i.id = j.item_id", "r.step > 0"),
    ]),
    ("labeling_reviewtask", ["id", "project_id", "run_id", "state"], [
        ("r.project_id", "0", "COALESCE(r.run_id, 0)", "'task:' || r.state", "1", "0", "", "TRUE"),
    ]),
    ("labeling_humanlabel", ["id", "item_id", "task_id", "lead_time_seconds"], [
        ("i.project_id", "0", "COALESCE(t.run_id, 0)", "'human_seconds'", "1", "COALESCE(r.lead_time_seconds, 0)",
         "JOIN labeling_item i ON i.id = r.item_id LEFT JOIN labeling_reviewtask t ON t.id = r.task_id", "TRUE"),
    ]),
    # What each run labelled automatically, from the append-only audit log (the item services write the run).
    ("labeling_auditevent", ["id", "project_id", "verb", "data"], [
        ("r.project_id", "0", "{audit_run}", "'tier:' || substr(r.verb, 12)", "1", "0", "",
         "r.verb IN ('labeled_by_surrogate', 'labeled_by_judge') AND {audit_has_run}"),
    ]),
]

DIALECT = {
    "postgresql": {"float": "double precision", "audit_run": "(r.data ->> 'run')::bigint",
                   "audit_has_run": "(r.data ->> 'run') ~ '^[0-9]{1,18}$'"},
    "sqlite": {"float": "REAL", "audit_run": "CAST(json_extract(r.data, '$.run') AS INTEGER)",
               "audit_has_run": "json_type(r.data, '$.run') = 'integer'"},
}
COMPACT_EVERY = 1024
INSERT = "INSERT INTO labeling_tally (project_id, batch_id, run_id, key, n, amount)"


def _deltas(expressions, rows: str, sign: int, vendor: str) -> str:
    d = DIALECT[vendor]
    parts = []
    for project, batch, run, key, n, amount, joins, condition in expressions:
        parts.append(
            f"SELECT {project} AS project_id, {batch} AS batch_id, {run} AS run_id, {key} AS key, "
            f"{sign} * ({n}) AS n, CAST({sign} * ({amount}) AS {d['float']}) AS amount "
            f"FROM {rows} r {joins} WHERE {condition}".format(**d))
    return " UNION ALL ".join(parts)


def _grouped(deltas: str) -> str:
    return (f"SELECT project_id, batch_id, run_id, key, SUM(n), SUM(amount) FROM ({deltas}) d "
            "GROUP BY project_id, batch_id, run_id, key HAVING SUM(n) <> 0 OR SUM(amount) <> 0")


def postgresql_sql() -> list[str]:
    sql = [f"""
CREATE FUNCTION labeling_tally_compact(p bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- One folder per project at a time; a writer that finds it busy leaves the folding to it.
    IF NOT pg_try_advisory_xact_lock(7291, mod(p, 2147483647)::integer) THEN
        RETURN;
    END IF;
    WITH gone AS (DELETE FROM labeling_tally WHERE project_id = p RETURNING batch_id, run_id, key, n, amount)
    {INSERT}
    SELECT p, batch_id, run_id, key, SUM(n), SUM(amount) FROM gone GROUP BY batch_id, run_id, key
    HAVING SUM(n) <> 0 OR SUM(amount) <> 0;
END $$"""]
    for table, _columns, expressions in TALLIES:
        def add(deltas: str) -> str:
            return (f"WITH added AS ({INSERT} {_grouped(deltas)} RETURNING id, project_id) "
                    f"SELECT array_agg(DISTINCT project_id) INTO due FROM added WHERE mod(id, {COMPACT_EVERY}) = 0;")
        inserted = _deltas(expressions, "new_rows", 1, "postgresql")
        deleted = _deltas(expressions, "old_rows", -1, "postgresql")
        sql.append(f"""
CREATE FUNCTION {table}_tally() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    due bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        {add(inserted)}
    ELSIF TG_OP = 'UPDATE' THEN
        {add(inserted + " UNION ALL " + deleted)}
    ELSE
        {add(deleted)}
    END IF;
    IF due IS NOT NULL THEN
        PERFORM labeling_tally_compact(p) FROM unnest(due) AS p;
    END IF;
    RETURN NULL;
END $$""")
        for event, referencing in (("INSERT", "NEW TABLE AS new_rows"),
                                   ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                                   ("DELETE", "OLD TABLE AS old_rows")):
            sql.append(f"CREATE TRIGGER {table}_tally_{event.lower()} AFTER {event} ON {table} "
                       f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {table}_tally()")
    return sql


def sqlite_sql() -> list[str]:
    sql = [f"""
CREATE TRIGGER labeling_tally_compact AFTER INSERT ON labeling_tally WHEN NEW.id % {COMPACT_EVERY} = 0
BEGIN
    {INSERT}
    SELECT project_id, batch_id, run_id, key, SUM(n), SUM(amount) FROM labeling_tally
    WHERE project_id = NEW.project_id AND id <= NEW.id GROUP BY batch_id, run_id, key
    HAVING SUM(n) <> 0 OR SUM(amount) <> 0;
    DELETE FROM labeling_tally WHERE project_id = NEW.project_id AND id <= NEW.id;
END"""]
    for table, columns, expressions in TALLIES:
        def row(alias: str) -> str:
            return "(SELECT " + ", ".join(f"{alias}.{c} AS {c}" for c in columns) + ")"
        for event, deltas in (
            ("INSERT", _deltas(expressions, row("NEW"), 1, "sqlite")),
            ("UPDATE", _deltas(expressions, row("NEW"), 1, "sqlite") + " UNION ALL "
             + _deltas(expressions, row("OLD"), -1, "sqlite")),
            ("DELETE", _deltas(expressions, row("OLD"), -1, "sqlite")),
        ):
            sql.append(f"CREATE TRIGGER {table}_tally_{event.lower()} AFTER {event} ON {table} "
                       f"BEGIN {INSERT} {_grouped(deltas)}; END")
    return sql


def count_existing_rows(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    for table, _columns, expressions in TALLIES:
        schema_editor.execute(f"{INSERT} {_grouped(_deltas(expressions, table, 1, vendor))}")


def create_triggers(apps, schema_editor) -> None:
    for statement in {"postgresql": postgresql_sql, "sqlite": sqlite_sql}[schema_editor.connection.vendor]():
        schema_editor.execute(statement)


def drop_triggers(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    for table, _columns, _expressions in TALLIES:
        for event in ("insert", "update", "delete"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_tally_{event}"
                                  + (f" ON {table}" if vendor == "postgresql" else ""))
        if vendor == "postgresql":
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {table}_tally()")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS labeling_tally_compact(bigint)")
    else:
        schema_editor.execute("DROP TRIGGER IF EXISTS labeling_tally_compact")


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Tally',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('project_id', models.BigIntegerField()),
                ('batch_id', models.BigIntegerField(default=0)),
                ('run_id', models.BigIntegerField(default=0)),
                ('key', models.CharField(max_length=64)),
                ('n', models.BigIntegerField(default=0)),
                ('amount', models.FloatField(default=0.0)),
            ],
        ),
        migrations.AddIndex(
            model_name='humanlabel',
            index=models.Index(condition=models.Q(('review_status', 'pending'), ('source', 'review')), fields=['id'], name='humanlabel_pending_review'),
        ),
        migrations.AddIndex(
            model_name='tally',
            index=models.Index(fields=['project_id', 'run_id'], name='tally_project_run'),
        ),
        migrations.RunPython(count_existing_rows, migrations.RunPython.noop),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
