"""Moving the test database between migration states, for tests of data migrations."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(targets):
    """Migrate to ``targets`` [(app, migration)] and return the apps as they stand there."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def leaf_nodes(app: str | None = None):
    """The latest migration of ``app`` (of every app without one), to migrate back to."""
    return MigrationExecutor(connection).loader.graph.leaf_nodes(app)
