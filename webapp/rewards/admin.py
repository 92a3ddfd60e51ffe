from django.contrib import admin

from webapp.rewards.models import RewardModel


@admin.register(RewardModel)
class RewardModelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "backbone", "ensemble_size", "created_at"]
    list_filter = ["project", "backbone"]
