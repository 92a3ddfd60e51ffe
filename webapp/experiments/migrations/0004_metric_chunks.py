# Metric points move into chunks: one row per (run, key) per written batch instead of one row
# per point (bench/metric_ingest.md). ``experiments_metricpoint`` becomes a view over the chunks,
# so every reader of points keeps its SQL and ORM queries.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models
from django.db.models.lookups import LessThan

CHUNKS = "experiments_metricchunk"
POINTS = "experiments_metricpoint"
BLOCK = 4096  # steps per chunk at most (MAX_CHUNK_SPAN): the points moved over are cut at multiples of it

PG_VIEW = f"""
CREATE VIEW {POINTS} AS
SELECT c.run_id, c.key, (p.point->>0)::bigint AS step, (p.point->>1)::float8 AS value, c.recorded_at,
       c.step_min AS chunk_step_min, c.step_max AS chunk_step_max
FROM {CHUNKS} c CROSS JOIN LATERAL jsonb_array_elements(c.points) AS p(point)
"""
SQLITE_VIEW = f"""
CREATE VIEW {POINTS} AS
SELECT c.run_id AS run_id, c.key AS key, json_extract(p.value, '$[0]') AS step,
       json_extract(p.value, '$[1]') AS value, c.recorded_at AS recorded_at,
       c.step_min AS chunk_step_min, c.step_max AS chunk_step_max
FROM {CHUNKS} c, json_each(c.points) AS p
"""

# Chunks of a series never overlap, so (run, key, step) stays unique. PostgreSQL: an exclusion
# constraint (race-free); SQLite serialises writers, so triggers suffice (bounded by the span
# check: a chunk that overlaps the new one ends within BLOCK steps of its end).
PG_DISJOINT = f"""
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE {CHUNKS} ADD CONSTRAINT metric_chunk_disjoint
    EXCLUDE USING gist (run_id WITH =, key WITH =, int8range(step_min, step_max, '[]') WITH &&);
"""
SQLITE_DISJOINT = [
    f"""CREATE TRIGGER metric_chunk_disjoint_{when} BEFORE {when.upper()} ON {CHUNKS}
    WHEN EXISTS (SELECT 1 FROM {CHUNKS} c WHERE c.run_id = NEW.run_id AND c.key = NEW.key
                 AND c.step_max BETWEEN NEW.step_min AND NEW.step_max + {BLOCK - 1}
                 AND c.step_min <= NEW.step_max{extra})
    BEGIN SELECT RAISE(ABORT, 'metric_chunk_disjoint: chunks of a metric series may not overlap'); END"""
    for when, extra in (("insert", ""), ("update", " AND c.id <> OLD.id"))
]

# Gaps and islands: maximal runs of consecutive points (in step order) recorded at the same
# moment, cut every BLOCK steps, become one chunk each; ranges stay disjoint and every point
# keeps its recorded_at.
PG_MOVE = f"""
INSERT INTO {CHUNKS} (run_id, key, step_min, step_max, points, recorded_at)
SELECT run_id, key, min(step), max(step), jsonb_agg(jsonb_build_array(step, value) ORDER BY step), recorded_at
FROM (SELECT run_id, key, step, value, recorded_at,
             row_number() OVER (PARTITION BY run_id, key ORDER BY step)
             - row_number() OVER (PARTITION BY run_id, key, recorded_at ORDER BY step) AS island
      FROM experiments_metricpoint_rows) AS p
GROUP BY run_id, key, recorded_at, island, step / {BLOCK}
"""
PG_TRIGGER = f"""
CREATE OR REPLACE FUNCTION experiments_run_delete_metrics() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {CHUNKS} WHERE run_id IN (SELECT id FROM deleted_runs);
    DELETE FROM experiments_metricrollup WHERE run_id IN (SELECT id FROM deleted_runs);
    RETURN NULL;
END $$;
"""
PG_TRIGGER_BACK = """
CREATE OR REPLACE FUNCTION experiments_run_delete_metrics() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM experiments_metricpoint WHERE run_id IN (SELECT id FROM deleted_runs);
    DELETE FROM experiments_metricrollup WHERE run_id IN (SELECT id FROM deleted_runs);
    RETURN NULL;
END $$;
"""


def _sqlite_chunks(cursor):
    """The same islands as PG_MOVE, built in Python (SQLite 3.40 has no ordered aggregates)."""
    cursor.execute("SELECT run_id, key, step, value, recorded_at FROM experiments_metricpoint_rows "
                   "ORDER BY run_id, key, step")
    chunk = None
    for run_id, key, step, value, recorded_at in cursor.fetchall():
        same = (chunk is not None and chunk[0] == (run_id, key) and chunk[1] == recorded_at
                and chunk[2][0][0] // BLOCK == step // BLOCK)
        if same:
            chunk[2].append([step, value])
            continue
        if chunk is not None:
            yield chunk
        chunk = ((run_id, key), recorded_at, [[step, value]])
    if chunk is not None:
        yield chunk


def forward(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {POINTS} RENAME TO experiments_metricpoint_rows")
        if connection.vendor == "postgresql":
            cursor.execute(PG_DISJOINT)
            cursor.execute(PG_MOVE)
            cursor.execute(PG_TRIGGER)
            cursor.execute("DROP TABLE experiments_metricpoint_rows")
            cursor.execute(PG_VIEW)
        else:
            import json

            for statement in SQLITE_DISJOINT:
                cursor.execute(statement)
            rows = [(run_id, key, points[0][0], points[-1][0], json.dumps(points), recorded_at)
                    for (run_id, key), recorded_at, points in list(_sqlite_chunks(cursor))]
            cursor.executemany(f"INSERT INTO {CHUNKS} (run_id, key, step_min, step_max, points, recorded_at) "
                               "VALUES (%s, %s, %s, %s, %s, %s)", rows)
            cursor.execute("DROP TABLE experiments_metricpoint_rows")
            cursor.execute(SQLITE_VIEW)


def backward(apps, schema_editor):
    """Points back into a table of their own (the state before this migration), chunks dropped after."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE experiments_metricpoint_rows AS SELECT run_id, key, step, value, recorded_at "
                       f"FROM {POINTS}")
        cursor.execute(f"DROP VIEW {POINTS}")
        if connection.vendor == "postgresql":
            cursor.execute(PG_TRIGGER_BACK)
        else:
            for when in ("insert", "update"):
                cursor.execute(f"DROP TRIGGER metric_chunk_disjoint_{when}")
    schema_editor.create_model(apps.get_model("experiments", "MetricPoint"))
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {POINTS} (run_id, key, step, value, recorded_at) "
                       "SELECT run_id, key, step, value, recorded_at FROM experiments_metricpoint_rows")
        cursor.execute("DROP TABLE experiments_metricpoint_rows")


class Migration(migrations.Migration):

    dependencies = [
        ("experiments", "0003_metric_fk_per_batch"),
    ]

    operations = [
        migrations.CreateModel(
            name="MetricChunk",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=200)),
                ("step_min", models.BigIntegerField()),
                ("step_max", models.BigIntegerField()),
                ("points", models.JSONField(help_text="[[step, value], …], steps ascending.")),
                ("recorded_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("run", models.ForeignKey(db_constraint=False, db_index=False,
                                          on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                          to="experiments.run")),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("run", "key", "step_max"), name="metric_chunk_unique_end"),
                    models.CheckConstraint(condition=models.Q(("step_min__lte", models.F("step_max"))),
                                           name="metric_chunk_range"),
                    models.CheckConstraint(condition=LessThan(models.F("step_max") - models.F("step_min"), BLOCK),
                                           name="metric_chunk_span"),
                ],
            },
        ),
        migrations.RunPython(forward, backward),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="MetricPoint"),
                migrations.CreateModel(
                    name="MetricPoint",
                    fields=[
                        ("pk", models.CompositePrimaryKey("run", "key", "step", blank=True, editable=False,
                                                          primary_key=True, serialize=False)),
                        ("key", models.CharField(max_length=200)),
                        ("step", models.BigIntegerField()),
                        ("value", models.FloatField()),
                        ("recorded_at", models.DateTimeField()),
                        ("chunk_step_min", models.BigIntegerField()),
                        ("chunk_step_max", models.BigIntegerField()),
                        ("run", models.ForeignKey(db_constraint=False,
                                                  on_delete=django.db.models.deletion.DO_NOTHING,
                                                  related_name="metrics", to="experiments.run")),
                    ],
                    options={"db_table": "experiments_metricpoint", "managed": False},
                ),
            ],
        ),
    ]
