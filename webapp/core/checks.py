"""System checks (``manage.py check``, and before ``migrate`` and ``serve``) on settings that are
each valid alone but clash together."""

from pathlib import Path

from django.conf import settings
from django.core import checks

# Each pair of folders that must stand apart, and what would go wrong were they one folder or
# nested. STEER_ARTIFACT_DIR and STEER_CHECKPOINT_DIR each hold a ``run-<id>`` folder per run;
# STEER_MODEL_CACHE_DIR holds the built-in models converted once and shared by every run.
_APART = (
    ("STEER_ARTIFACT_DIR", "STEER_CHECKPOINT_DIR",
     ("both hold a run-<id> folder for each run, so a run's artifacts and checkpoints would collide, "
      "and deleting one would delete the other")),
    ("STEER_MODEL_CACHE_DIR", "STEER_CHECKPOINT_DIR",
     ("deleting a run's checkpoint folder could delete cached models, and a cached model could be "
      "taken for a run's checkpoints")),
    ("STEER_MODEL_CACHE_DIR", "STEER_ARTIFACT_DIR",
     ("deleting a run's artifact folder could delete cached models, and a cached model could be "
      "taken for a run's artifacts")),
)


def run_folders_apart(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """STEER_ARTIFACT_DIR, STEER_CHECKPOINT_DIR and STEER_MODEL_CACHE_DIR must be three folders,
    none inside another: were two of them one folder, deleting a run's checkpoints or a stale
    artifact folder would take the other's files with it (a run's artifacts, or the cached
    models); one inside the other, a folder of one could stand in the other's tree. One error
    per clashing pair, naming both settings. Compared resolved, links followed; a setting whose
    path cannot be resolved (a loop of links) is an error of its own, steer.E002, naming it and
    its path, and is left out of the comparisons."""
    errors, resolved = [], {}
    for name in dict.fromkeys(name for pair in _APART for name in pair[:2]):
        path = Path(getattr(settings, name))
        try:
            resolved[name] = path.resolve()
        except (OSError, RuntimeError) as exc:  # a loop of links: RuntimeError to 3.12, OSError after
            errors.append(checks.Error(
                f"{name} ({path}) cannot be resolved: {getattr(exc, 'strerror', None) or exc}.",
                hint=f"Point {name} at a folder, or at a link that leads to one (not at a loop of "
                     "links), or unset it for its default under STEER_VAR_DIR.",
                id="steer.E002",
            ))
    for first, second, why in _APART:
        if first not in resolved or second not in resolved:
            continue
        a, b = resolved[first], resolved[second]
        if a == b:
            clash = f"are the same folder, {a}"
        elif a.is_relative_to(b):
            clash = f"nest: {first} ({a}) is inside {second} ({b})"
        elif b.is_relative_to(a):
            clash = f"nest: {second} ({b}) is inside {first} ({a})"
        else:
            continue
        errors.append(checks.Error(
            f"{first} and {second} {clash}; {why}.",
            hint="Point them at separate folders, none inside another: unset STEER_ARTIFACT_DIR, "
                 "STEER_CHECKPOINT_DIR and STEER_MODEL_CACHE_DIR for STEER_VAR_DIR/artifacts, "
                 "STEER_VAR_DIR/checkpoints and STEER_VAR_DIR/models.",
            id="steer.E001",
        ))
    return errors
