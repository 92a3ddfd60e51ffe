"""The form that registers a policy: where it comes from, and what it is named.

Only the field of the chosen source is read; the rules (a finished run's checkpoint, staff for a
local folder, a known built-in) are ``webapp.experiments.policies.policy_create``'s, and its
errors are put back on the field that holds the input.
"""

from __future__ import annotations

from django import forms

from webapp.experiments.models import PolicyModel
from webapp.experiments.policies import builtin_names


class PolicyForm(forms.Form):
    name = forms.CharField(max_length=120)
    source = forms.ChoiceField(widget=forms.RadioSelect)
    builtin = forms.ChoiceField(required=False, label="Built-in model")
    checkpoint = forms.TypedChoiceField(required=False, coerce=int, empty_value=None,
                                        label="Checkpoint (of a finished run)")
    path = forms.CharField(required=False, max_length=500, label="Folder on the workers",
                           help_text="An absolute path to a folder saved with save_pretrained (config.json, "
                                     "weights, tokenizer). Staff only.",
                           widget=forms.TextInput(attrs={"class": "mono"}))

    def __init__(self, *args, checkpoints=(), staff: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        sources = [PolicyModel.Source.BUILTIN, PolicyModel.Source.CHECKPOINT, PolicyModel.Source.TINY]
        if staff:
            sources.append(PolicyModel.Source.PATH)
        else:
            del self.fields["path"]
        self.fields["source"].choices = [(s.value, s.label) for s in sources]
        self.fields["builtin"].choices = [(n, n) for n in builtin_names()]
        self.fields["checkpoint"].choices = [("", "—")] + [
            (c.pk, f"{c.run.name} · step {c.step} ({c.run.get_status_display().lower()})") for c in checkpoints]

    def reference(self) -> str:
        source = self.cleaned_data["source"]
        if source == PolicyModel.Source.BUILTIN:
            return self.cleaned_data.get("builtin") or ""
        if source == PolicyModel.Source.PATH:
            return self.cleaned_data.get("path") or ""
        return ""

    def checkpoint_id(self) -> int | None:
        if self.cleaned_data["source"] != PolicyModel.Source.CHECKPOINT:
            return None
        return self.cleaned_data.get("checkpoint")

    def field_for_error(self, field: str | None) -> str | None:
        """The form field that holds the input a PolicyError names."""
        if field == "reference":
            return "path" if self.cleaned_data.get("source") == PolicyModel.Source.PATH else "builtin"
        return field if field in self.fields else None
