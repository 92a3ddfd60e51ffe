# Rollup buckets of 16, 256, 4,096 and 65,536 steps (were 8, 64, …, 32,768): the stored rollups
# are recomputed from the points. SQL frozen here (window functions, the same on PostgreSQL
# and SQLite) so that later changes to webapp.experiments.metric_rollups do not change history.

from django.db import migrations

POINTS = "experiments_metricpoint"
ROLLUPS = "experiments_metricrollup"
COLUMNS = "n, first_step, first_value, last_step, last_value, min_step, min_value, max_step, max_value"


def rebuild(widths):
    def run(apps, schema_editor):
        p = "PARTITION BY run_id, key, b"
        merged = (
            f"COUNT(*) OVER ({p}), "
            f"FIRST_VALUE(step) OVER ({p} ORDER BY step), FIRST_VALUE(value) OVER ({p} ORDER BY step), "
            f"FIRST_VALUE(step) OVER ({p} ORDER BY step DESC), FIRST_VALUE(value) OVER ({p} ORDER BY step DESC), "
            f"FIRST_VALUE(step) OVER ({p} ORDER BY value, step), FIRST_VALUE(value) OVER ({p} ORDER BY value, step), "
            f"FIRST_VALUE(step) OVER ({p} ORDER BY value DESC, step), "
            f"FIRST_VALUE(value) OVER ({p} ORDER BY value DESC, step)"
        )
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {ROLLUPS}")
            for level, width in enumerate(widths, start=1):
                cursor.execute(
                    f"INSERT INTO {ROLLUPS} (run_id, key, level, bucket, {COLUMNS}) "
                    f"SELECT DISTINCT run_id, key, {level}, b, {merged} "
                    f"FROM (SELECT run_id, key, step / {width} AS b, step, value FROM {POINTS}) AS pts"
                )
    return run


class Migration(migrations.Migration):

    dependencies = [
        ("experiments", "0004_metric_chunks"),
    ]

    operations = [
        migrations.RunPython(rebuild((16, 256, 4096, 65536)), rebuild((8, 64, 512, 4096, 32768))),
    ]
