from django.conf import settings
from django.db import models

from webapp.experiments.models import Run
from webapp.projects.models import Project


class RewardModel(models.Model):
    """A trained reward model (possibly an ensemble) that later runs can use as a reward."""

    class Backbone(models.TextChoices):
        MINILM = "minilm", "MiniLM encoder"
        CAUSAL_LM = "causal_lm", "Causal LM with a scalar head"
        TINY = "tiny", "Tiny random encoder (tests)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reward_models")
    name = models.CharField(max_length=120)
    training_run = models.OneToOneField(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="reward_model"
    )
    backbone = models.CharField(max_length=16, choices=Backbone.choices)
    ensemble_size = models.PositiveIntegerField(default=1)
    path = models.CharField(max_length=500, blank=True, help_text="Folder the trained model was saved to.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Final metrics, e.g. eval/accuracy.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="reward_model_unique_name_per_project"),
            models.CheckConstraint(condition=models.Q(ensemble_size__gte=1), name="reward_model_members"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_ready(self) -> bool:
        return bool(self.path)


class PreferencePairSet(models.Model):
    """Preference pairs imported from JSONL ({prompt, chosen, rejected} a line) to train a reward
    model on before, or beside, the project's own annotation labels."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="preference_pair_sets")
    name = models.CharField(max_length=120)
    pairs = models.JSONField(default=list, help_text="[{prompt, chosen, rejected}], prompt a string or messages.")
    pair_count = models.PositiveIntegerField(default=0)
    has_chat_prompt = models.BooleanField(
        default=False, help_text="Some pair's prompt is chat messages, so the set downloads as conversational.")
    has_margin = models.BooleanField(
        default=False, db_default=False,
        help_text="Some pair has a margin, so the download gives every pair one (0.0 where it has none).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="pair_set_unique_name_per_project"),
        ]

    def __str__(self) -> str:
        return self.name
