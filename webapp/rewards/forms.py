from django import forms

from webapp.core.uploads import upload_form_text
from webapp.experiments.models import Run, RunKind


class PairImportForm(forms.Form):
    name = forms.CharField(max_length=120)
    file = forms.FileField(help_text='JSONL, one pair a line: {"prompt": ..., "chosen": ..., "rejected": ...}; '
                                     "the prompt may be a list of chat messages, chosen and rejected the "
                                     "assistant's messages (TRL's conversational format), or, without a prompt, "
                                     "whole conversations whose shared opening messages are the prompt (TRL's "
                                     "implicit prompt). A line may carry TRL's optional \"margin\", a number "
                                     "from 0 to 20 by which a reward model should score chosen above rejected (the "
                                     "Bradley-Terry margin; DPO and SFT runs ignore it). A preferences.jsonl "
                                     "or labels.jsonl export of a project imports as it is, and so does "
                                     "ultrafeedback_binarized (trl-lib's or HuggingFaceH4's).")

    def clean_file(self):
        return upload_form_text(self.cleaned_data["file"])


class PairsFromRunForm(forms.Form):
    """Preference pairs from a run's completions, levelled by its rewards."""

    name = forms.CharField(max_length=120)
    run = forms.ModelChoiceField(queryset=Run.objects.none())
    step_min = forms.IntegerField(min_value=0, initial=0, label="From step")
    step_max = forms.IntegerField(min_value=0, label="To step")
    rule = forms.CharField(max_length=200, initial="reward", help_text=(
        "What ranks two completions of one prompt: 'reward' (the run's total) or the label of one "
        "of its reward components, e.g. exact_answer."))
    min_gap = forms.FloatField(min_value=0, initial=0.0, label="Minimum gap",
                               help_text="Pair two completions only if their levels differ by more than this.")
    max_pairs_per_group = forms.IntegerField(min_value=1, initial=4, label="Pairs per prompt",
                                             help_text="At most this many pairs from one prompt's completions, "
                                                       "widest gaps first.")

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["run"].queryset = (Run.objects.filter(project=project, kind__in=[RunKind.POLICY, RunKind.EXTERNAL])
                                       .order_by("-id"))
