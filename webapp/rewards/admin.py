from django.contrib import admin

from webapp.rewards.models import RewardModel


@admin.register(RewardModel)
class RewardModelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "backbone", "ensemble_size", "created_at"]
    list_filter = ["project", "backbone"]

    def has_delete_permission(self, request, obj=None):
        """Reward models are deleted from the Reward models page or the API
        (``reward_model_delete``), which refuses one that active runs use."""
        return False
