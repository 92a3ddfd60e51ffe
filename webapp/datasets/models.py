from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from webapp.projects.models import Project


class PromptDataset(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint("project", Lower("name"), name="dataset_unique_name_per_project_any_case"),
        ]

    def __str__(self) -> str:
        return self.name


class Prompt(models.Model):
    """One prompt: plain text, or chat messages [{"role", "content"}, ...]."""

    dataset = models.ForeignKey(PromptDataset, on_delete=models.CASCADE, related_name="prompts")
    index = models.PositiveIntegerField(help_text="Position in the dataset, from 0.")
    text = models.TextField(blank=True)
    messages = models.JSONField(null=True, blank=True)
    reference = models.TextField(blank=True, help_text="Reference answer, for verifiable rewards.")
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["dataset", "index"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "index"], name="prompt_unique_index"),
            models.CheckConstraint(
                condition=(~models.Q(text="") & models.Q(messages__isnull=True))
                | (models.Q(text="") & models.Q(messages__isnull=False)),
                name="prompt_text_xor_messages",
            ),
        ]

    def __str__(self) -> str:
        return self.display_text[:80]

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    @property
    def display_text(self) -> str:
        if self.messages is None:
            return self.text
        return "\n\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in self.messages)

    def engine_prompt(self):
        """The prompt as the engine takes it: a string or a list of messages."""
        return self.messages if self.messages is not None else self.text
