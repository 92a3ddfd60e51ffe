from django.contrib import admin

from webapp.feedback.models import (
    Assignment, Candidate, ComparisonTask, Criterion, CriterionScore, PreferenceLabel, Rubric, RubricVersion,
)


class CriterionInline(admin.TabularInline):
    model = Criterion
    extra = 0


@admin.register(Rubric)
class RubricAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at"]


@admin.register(RubricVersion)
class RubricVersionAdmin(admin.ModelAdmin):
    list_display = ["rubric", "number", "created_at"]
    inlines = [CriterionInline]


class CandidateInline(admin.TabularInline):
    model = Candidate
    extra = 0


@admin.register(ComparisonTask)
class ComparisonTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "required_labels", "label_count", "is_gold", "created_at"]
    list_filter = ["project", "is_gold"]
    inlines = [CandidateInline]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["task", "annotator", "status", "assigned_at", "expires_at"]
    list_filter = ["status"]


class CriterionScoreInline(admin.TabularInline):
    model = CriterionScore
    extra = 0


@admin.register(PreferenceLabel)
class PreferenceLabelAdmin(admin.ModelAdmin):
    """A label's review is shown, not edited: rejecting or restoring here would change whether the
    label counts without its task's ``label_count``. The review services (``review.py``, behind
    the label review page and the API) reject and restore, keeping the count right."""

    list_display = ["id", "task", "annotator", "ranking", "both_bad", "time_spent_ms", "created_at", "rejected_at"]
    list_filter = ["task__project"]
    readonly_fields = ["rejected_at", "rejected_by", "rejection_reason"]
    inlines = [CriterionScoreInline]
