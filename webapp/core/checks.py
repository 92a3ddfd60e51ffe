"""System checks (``manage.py check``, and before ``migrate`` and ``serve``) on settings that are
each valid alone but clash together."""

from pathlib import Path

from django.conf import settings
from django.core import checks


def run_folders_apart(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """STEER_ARTIFACT_DIR and STEER_CHECKPOINT_DIR each hold a ``run-<id>`` folder per run: were
    they one folder, a run's artifacts and checkpoints would share a folder, and deleting the run's
    checkpoints or a stale artifact folder would take the other's files with it; one inside the
    other, a run's folder could stand in the other's tree. Compared resolved, links followed."""
    artifacts = Path(settings.STEER_ARTIFACT_DIR).resolve()
    checkpoints = Path(settings.STEER_CHECKPOINT_DIR).resolve()
    if artifacts == checkpoints:
        clash = f"are the same folder, {artifacts}"
    elif artifacts.is_relative_to(checkpoints):
        clash = f"nest: STEER_ARTIFACT_DIR ({artifacts}) is inside STEER_CHECKPOINT_DIR ({checkpoints})"
    elif checkpoints.is_relative_to(artifacts):
        clash = f"nest: STEER_CHECKPOINT_DIR ({checkpoints}) is inside STEER_ARTIFACT_DIR ({artifacts})"
    else:
        return []
    return [checks.Error(
        f"STEER_ARTIFACT_DIR and STEER_CHECKPOINT_DIR {clash}; both hold a run-<id> folder for each run, "
        "so a run's artifacts and checkpoints would collide.",
        hint="Point them at two separate folders, neither inside the other: unset both for STEER_VAR_DIR/artifacts "
             "and STEER_VAR_DIR/checkpoints.",
        id="steer.E001",
    )]
