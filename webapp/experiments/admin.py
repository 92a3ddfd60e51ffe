from django.contrib import admin

from webapp.experiments.models import Checkpoint, MetricPoint, PolicyModel, Run, Trajectory


@admin.register(PolicyModel)
class PolicyModelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "source", "reference"]
    list_filter = ["source", "project"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "kind", "status", "progress", "worker", "created_at"]
    list_filter = ["kind", "status", "project"]
    search_fields = ["name"]
    readonly_fields = ["status", "started_at", "finished_at", "heartbeat_at", "worker", "attempts"]


@admin.register(MetricPoint)
class MetricPointAdmin(admin.ModelAdmin):
    list_display = ["run", "key", "step", "value"]
    list_filter = ["run__project"]
    search_fields = ["key"]


@admin.register(Trajectory)
class TrajectoryAdmin(admin.ModelAdmin):
    list_display = ["run", "step", "group_index", "sample_index", "reward", "advantage", "length", "finish_reason"]
    list_filter = ["finish_reason", "run__project"]


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = ["run", "step", "path", "size_bytes", "created_at"]
