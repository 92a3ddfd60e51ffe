"""Feedback in the admin: seen and lightly edited, never re-wired.

What a service keeps in step is read-only here: a task's ``label_count`` (the labels that
count, kept by labelling and review), the foreign keys that scope a row to its project and
tie a label to what it judged (a label's task, annotator and rubric version, a task's project,
source run and rubric version, a score's candidate and criterion, an assignment's task and
annotator, a rubric's project), and the copies made of them (a task's ``source_run_name``, a
rubric version's number). Changed by hand, a count went wrong (a label moved to another task
counted in neither's ``label_count`` as it should) or a row pointed into another project. Rows
those services create or delete (labels, assignments, rubrics) are not added or deleted here.

Nor is what labels point at: a task's candidates (their text, the position a ranking names
them by, their metadata, which names the run a head-to-head vote counts for) and a rubric
version's criteria (name, description, weight, scale, position), which scores were given
against. Edited, added or deleted here, a stored judgement came to mean another one (a label
"B over A" over a rewritten B, a score of 4 on a scale now 0-1): a rubric changes by a new
version (``rubric_update``, the rubric's page), tasks by importing new ones. So is a task's
prompt (text and chat messages), which its candidates answer and its labels judged them by,
and its gold answer (``is_gold``, ``gold_ranking``), which gold accuracy scores labels against:
a gold ranking is set or cleared on the task's page (``comparison_task_set_gold``), which
checks it against the task's candidates.
"""

from django.contrib import admin

from webapp.feedback.models import (
    Assignment, Candidate, ComparisonTask, Criterion, CriterionScore, PreferenceLabel, Rubric, RubricVersion,
)
from webapp.feedback.templatetags.durations import duration_ms


class CriterionInline(admin.TabularInline):
    """A version's criteria, shown: scores were given against them (see the module's docstring)."""

    model = Criterion
    extra = 0
    readonly_fields = ["position", "name", "description", "weight", "scale"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Rubric)
class RubricAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at"]
    readonly_fields = ["project"]

    def has_add_permission(self, request):
        """Rubrics are made on the Rubrics page or the API (``rubric_create``), in a project."""
        return False


@admin.register(RubricVersion)
class RubricVersionAdmin(admin.ModelAdmin):
    list_display = ["rubric", "number", "created_at"]
    readonly_fields = ["rubric", "number"]
    inlines = [CriterionInline]

    def has_add_permission(self, request):
        """A version is made by editing its rubric (``rubric_update``), which numbers it."""
        return False


class CandidateInline(admin.TabularInline):
    """A task's candidates, shown: its labels rank them by position (see the module's docstring)."""

    model = Candidate
    extra = 0
    readonly_fields = ["position", "text", "trajectory", "metadata"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ComparisonTask)
class ComparisonTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "required_labels", "label_count", "is_gold", "created_at"]
    list_filter = ["project", "is_gold"]
    # label_count is kept by labelling and review (review.py); the rest ties the task to its project.
    readonly_fields = ["project", "source_run", "source_run_name", "rubric_version", "label_count"]
    # What its labels judged (the prompt the candidates answer) and what gold scoring compares
    # them with: the gold answer is set on the task's page (``comparison_task_set_gold``, which
    # checks the ranking against the candidates and keeps ``is_gold`` and it in step).
    judged_fields = ["prompt_text", "prompt_messages", "is_gold", "gold_ranking"]
    inlines = [CandidateInline]

    def get_readonly_fields(self, request, obj=None):
        """Once the task exists (the admin adds none), its prompt and gold answer are shown, not edited."""
        fields = list(super().get_readonly_fields(request, obj))
        return fields + self.judged_fields if obj is not None else fields

    def has_add_permission(self, request):
        """Tasks are imported or made from a run (the comparison-tasks page, the API), in a project."""
        return False


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["task", "annotator", "status", "assigned_at", "expires_at"]
    list_filter = ["status"]
    readonly_fields = ["task", "annotator"]

    def has_add_permission(self, request):
        """Assignments are made by the annotation queue, which counts them against the task's room."""
        return False


class CriterionScoreInline(admin.TabularInline):
    model = CriterionScore
    extra = 0
    readonly_fields = ["candidate", "criterion"]

    def has_add_permission(self, request, obj=None):
        """Scores come with their label (``label_submit``), against its task's candidates."""
        return False


@admin.register(PreferenceLabel)
class PreferenceLabelAdmin(admin.ModelAdmin):
    """A label's review is shown, not edited: rejecting or restoring here would change whether the
    label counts without its task's ``label_count``. The review services (``review.py``, behind
    the label review page and the API) reject and restore, keeping the count right. Nor is its
    task (moved, it counted in neither task's ``label_count``), annotator or rubric version."""

    list_display = ["id", "task", "annotator", "ranking", "both_bad", "time_spent", "created_at", "rejected_at"]
    list_filter = ["task__project"]
    readonly_fields = ["task", "annotator", "rubric_version", "rejected_at", "rejected_by", "rejection_reason"]
    inlines = [CriterionScoreInline]

    @admin.display(description="Time spent", ordering="time_spent_ms")
    def time_spent(self, label) -> str:
        """As the task page shows it ("4.2 s"); the form and the exports keep raw milliseconds."""
        return duration_ms(label.time_spent_ms)

    def has_add_permission(self, request):
        """Labels are submitted by annotators (``label_submit``), which counts them on their task."""
        return False

    def has_delete_permission(self, request, obj=None):
        """A label deleted here stayed in its task's ``label_count``; its annotator withdraws it
        (``label_undo``) or a researcher rejects it, and both keep the count right."""
        return False
