from django.conf import settings
from django.db import models

from webapp.experiments.models import Run, Trajectory
from webapp.projects.models import Project


class Rubric(models.Model):
    """A named set of criteria; edits create a new RubricVersion so old scores keep their meaning."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rubrics")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="rubric_unique_name_per_project"),
        ]

    def __str__(self) -> str:
        return self.name

    def latest_version(self):
        return self.versions.order_by("-number").first()


class RubricVersion(models.Model):
    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rubric", "number"]
        constraints = [
            models.UniqueConstraint(fields=["rubric", "number"], name="rubric_version_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.rubric} v{self.number}"


class Criterion(models.Model):
    class Scale(models.TextChoices):
        BINARY = "binary", "Yes / no (0–1)"
        LIKERT_5 = "likert5", "1–5"
        TEN = "ten", "0–10"

    SCALE_BOUNDS = {Scale.BINARY: (0, 1), Scale.LIKERT_5: (1, 5), Scale.TEN: (0, 10)}

    version = models.ForeignKey(RubricVersion, on_delete=models.CASCADE, related_name="criteria")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, help_text="Markdown.")
    weight = models.FloatField(default=1.0)
    scale = models.CharField(max_length=8, choices=Scale.choices, default=Scale.LIKERT_5)

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="criterion_unique_position"),
            models.UniqueConstraint(fields=["version", "name"], name="criterion_unique_name"),
            models.CheckConstraint(condition=models.Q(weight__gt=0), name="criterion_weight_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def bounds(self) -> tuple[int, int]:
        return self.SCALE_BOUNDS[self.scale]


class ComparisonTask(models.Model):
    """A prompt and 2..k candidate completions for annotators to rank."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="comparison_tasks")
    source_run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source_run_name = models.CharField(
        max_length=200, blank=True, help_text="The source run's name, kept when the run is deleted; empty for imports.")
    prompt_text = models.TextField()
    prompt_messages = models.JSONField(null=True, blank=True, help_text="The prompt as chat messages, if it was one.")
    rubric_version = models.ForeignKey(
        RubricVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="tasks"
    )
    required_labels = models.PositiveIntegerField(default=1, help_text="Overlap: labels wanted per task.")
    label_count = models.PositiveIntegerField(default=0)
    is_gold = models.BooleanField(default=False)
    gold_ranking = models.JSONField(null=True, blank=True, help_text="Known ranking, as tiers of positions.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "label_count"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(required_labels__gte=1), name="task_requires_a_label"),
            models.CheckConstraint(
                condition=models.Q(is_gold=False) | models.Q(gold_ranking__isnull=False),
                name="gold_task_has_ranking",
            ),
        ]

    def __str__(self) -> str:
        return f"task {self.pk}"


class Candidate(models.Model):
    """One completion shown in a comparison task, at a fixed position (0 = A, 1 = B, ...)."""

    task = models.ForeignKey(ComparisonTask, on_delete=models.CASCADE, related_name="candidates")
    position = models.PositiveIntegerField()
    text = models.TextField()
    trajectory = models.ForeignKey(Trajectory, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["task", "position"]
        constraints = [models.UniqueConstraint(fields=["task", "position"], name="candidate_unique_position")]

    def __str__(self) -> str:
        return f"task {self.task_id} #{self.position}"


class Assignment(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        SKIPPED = "skipped", "Skipped"
        EXPIRED = "expired", "Expired"

    task = models.ForeignKey(ComparisonTask, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    assigned_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-assigned_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "annotator"],
                condition=models.Q(status="active"),
                name="assignment_one_active_per_annotator",
            ),
        ]
        indexes = [
            models.Index(fields=["annotator", "status"]),
            # The next-task query counts each task's live assignments; expiry scans by deadline.
            models.Index(fields=["task", "status", "expires_at"], name="assignment_task_live"),
            models.Index(fields=["status", "expires_at"], name="assignment_expiry"),
        ]


class PreferenceLabel(models.Model):
    """One annotator's judgement of one task, kept raw (never only as an aggregate).

    ``ranking`` holds tiers of candidate positions, best first: ``[[1], [0]]`` is B over A,
    ``[[0, 1]]`` a tie. ``both_bad`` marks a pairwise "both are bad" vote (a tie at the bottom).
    ``strength`` (pairwise, decisive labels only; optional) says how much better the preferred
    answer is, as HelpSteer2-Preference's magnitudes: 1 slightly, 2 better, 3 much better.
    A rejected label (``rejected_at`` set, see ``review.py``) is kept but counts nowhere.
    """

    class Strength(models.IntegerChoices):
        SLIGHTLY = 1, "slightly better"
        BETTER = 2, "better"
        MUCH = 3, "much better"

    task = models.ForeignKey(ComparisonTask, on_delete=models.CASCADE, related_name="labels")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="labels")
    ranking = models.JSONField()
    both_bad = models.BooleanField(default=False)
    strength = models.PositiveSmallIntegerField(
        null=True, blank=True, choices=Strength.choices,
        help_text="How much better the preferred answer is (pairwise labels that prefer one); null: not said.")
    critique = models.TextField(blank=True)
    rubric_version = models.ForeignKey(
        RubricVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="labels"
    )
    time_spent_ms = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Time spent on the label: as the workspace measured it, else from the annotator's assignment of "
                  "the task; null: unknown (sent without a time and without an assignment).")
    submission_key = models.CharField(max_length=64, unique=True, help_text="Client key; a retried request stores one label.")
    created_at = models.DateTimeField(auto_now_add=True)
    # Review: a researcher's rejection (a spammer's or careless label). The label is kept, raw,
    # but no longer counts: not in the task's label_count, exports, training or quality figures.
    rejected_at = models.DateTimeField(null=True, blank=True, help_text="When a researcher rejected it; null: it counts.")
    rejected_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    rejection_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["task", "annotator"], name="label_one_per_annotator_and_task"),
            models.CheckConstraint(condition=models.Q(strength__isnull=True) | models.Q(strength__gte=1, strength__lte=3),
                                   name="label_strength_1_to_3"),
        ]

    def __str__(self) -> str:
        return f"label {self.pk} on task {self.task_id}"


class CriterionScore(models.Model):
    label = models.ForeignKey(PreferenceLabel, on_delete=models.CASCADE, related_name="scores")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="scores")
    criterion = models.ForeignKey(Criterion, on_delete=models.PROTECT, related_name="scores")
    value = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["label", "candidate", "criterion"], name="score_unique"),
        ]
