from django.contrib import admin

from webapp.datasets.models import Prompt, PromptDataset


@admin.register(PromptDataset)
class PromptDatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at"]
    list_filter = ["project"]
    search_fields = ["name"]

    def has_delete_permission(self, request, obj=None):
        """Datasets are deleted from their page or the API (``dataset_delete``), which refuses
        a dataset runs used and waits for launches in flight."""
        return False


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["dataset", "index", "__str__", "reference"]
    list_filter = ["dataset__project"]
    search_fields = ["text", "reference"]
