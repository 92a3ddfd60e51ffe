from django.contrib import admin

from webapp.experiments.models import Checkpoint, MetricChunk, PolicyModel, Run, RunArtifact, Trajectory


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows listed and shown, none added, changed or deleted here: the services that write them keep
    them in step with what they stand for (the subclass's docstring says what and where)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PolicyModel)
class PolicyModelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "source", "reference"]
    list_filter = ["source", "project"]
    readonly_fields = ["project", "source", "reference", "checkpoint", "created_by"]

    def has_add_permission(self, request):
        """Policies are registered on the Policies page or the API (``policy_create``), which
        check the built-in's name, the checkpoint's project and run, and staff for a folder."""
        return False

    def has_delete_permission(self, request, obj=None):
        """Policies are deleted from their page or the API (``policy_delete``), which refuses a
        policy runs trained from and orders itself against launches."""
        return False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "kind", "status", "progress", "worker", "created_at"]
    list_filter = ["kind", "status", "project"]
    search_fields = ["name"]
    # What a run was launched with is checked at launch (same project, a config the engine
    # accepts, locks against deletion); the admin changes none of it.
    readonly_fields = ["project", "kind", "config", "dataset", "policy", "eval_dataset", "created_by",
                       "status", "started_at", "finished_at", "heartbeat_at", "worker", "attempts"]

    def has_add_permission(self, request):
        """Runs are launched from the New-run page or the API (``run_launch``, ``run_create``),
        which validate their config and lock what they use."""
        return False

    def has_delete_permission(self, request, obj=None):
        """Runs are deleted from their page or the API (``run_delete``), which refuses active
        runs and runs that trained a reward model and removes the checkpoint folder."""
        return False


@admin.register(MetricChunk)
class MetricChunkAdmin(ViewOnlyAdmin):
    """Read-only: points are written by metric_points_upsert, which keeps the rollups in step (a
    row deleted here would leave them stale)."""

    list_display = ["run", "key", "step_min", "step_max", "recorded_at"]
    list_filter = ["run__project"]
    search_fields = ["key"]


@admin.register(Trajectory)
class TrajectoryAdmin(ViewOnlyAdmin):
    """Read-only: a trajectory is the record of what its run sampled and how it was scored, written
    by the run's worker (or an external trainer's report). Comparison tasks and their labels point
    at trajectories, and the run's charts, exports and summaries count them: one edited here told
    another story than its run, and one deleted here unlinked the tasks made from it. They go with
    their run (``run_delete``), or as a resumed run discards what lost attempts recorded."""

    list_display = ["run", "step", "group_index", "sample_index", "reward", "advantage", "length", "finish_reason"]
    list_filter = ["finish_reason", "run__project"]


@admin.register(Checkpoint)
class CheckpointAdmin(ViewOnlyAdmin):
    """Read-only: a row stands for a folder of weights on disk, written by the run's worker. No
    service deletes one checkpoint (``run_delete`` removes a run's rows and its checkpoint folder
    together, and refuses a run a policy starts from), so a row deleted here left its files on
    disk, and a row changed here (its path, step) no longer described them or pointed a policy
    registered from it elsewhere: delete the run on its page or through the API."""

    list_display = ["run", "step", "path", "size_bytes", "created_at"]


@admin.register(RunArtifact)
class RunArtifactAdmin(ViewOnlyAdmin):
    """Read-only: a row and its file on disk are kept in step by the artifact services
    (``webapp.experiments.artifacts``). An upload (the run's page, the API) writes the file, then
    the row with its size and hash, and replaces the path's old file; ``artifact_delete`` removes
    the row and then its file. A row changed here no longer described its file (size, sha256, the
    stored name), and one deleted here left its file on disk, unlisted and still counted by no
    limit: delete an artifact on its run's page or through the API."""

    list_display = ["run", "project", "path", "size_bytes", "sha256", "created_at"]
    list_filter = ["run__project"]
    list_select_related = ["run__project"]
    search_fields = ["path"]

    @admin.display(ordering="run__project")
    def project(self, artifact: RunArtifact):
        return artifact.run.project
