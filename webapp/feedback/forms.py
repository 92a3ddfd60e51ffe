import time
import uuid

from django import forms

from webapp.core.json_input import storable_json
from webapp.core.uploads import upload_form_text
from webapp.experiments.models import Run
from webapp.feedback.labelling import MAX_CRITIQUE_CHARS, MAX_TIME_SPENT_MS
from webapp.feedback.models import Criterion, PreferenceLabel, Rubric
from webapp.feedback.ranking import PAIRWISE_CHOICES, ranking_from_pairwise_choice, ranking_from_ranks
from webapp.feedback.selectors import LETTERS


class CriterionForm(forms.Form):
    name = forms.CharField(max_length=120, required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                  help_text="Markdown, shown to annotators.")
    weight = forms.FloatField(initial=1.0, min_value=0.001)
    scale = forms.ChoiceField(choices=Criterion.Scale.choices, initial=Criterion.Scale.LIKERT_5)

    def clean(self):
        """A row with a description but no name is a mistake, not an empty row to ignore."""
        data = super().clean()
        if not data.get("name") and data.get("description", "").strip() and not data.get("DELETE"):
            self.add_error("name", "A criterion needs a name.")
        return data


CriterionFormSet = forms.formset_factory(CriterionForm, extra=2, can_delete=True)


def criteria_from_formset(formset) -> list[dict]:
    """Filled-in, not deleted rows of a valid formset, in order."""
    return [{k: f.cleaned_data[k] for k in ("name", "description", "weight", "scale")}
            for f in formset.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE") and f.cleaned_data.get("name", "").strip()]


class RubricForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


def _rubric_field(project):
    return forms.ModelChoiceField(queryset=Rubric.objects.filter(project=project), required=False,
                                  empty_label="(no rubric)", help_text="Annotators score each completion on its latest version.")


class TaskImportForm(forms.Form):
    file = forms.FileField(help_text='JSONL, one task a line: {"prompt": "..." or [messages], "completions": ["...", "..."] '
                                     '(each a string or the assistant\'s messages), optional "gold_ranking": [[1], [0]], '
                                     '"metadata": {...}}.')
    required_labels = forms.IntegerField(min_value=1, max_value=100, initial=1, label="Labels per task (overlap)")

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rubric"] = _rubric_field(project)

    def clean_file(self):
        return upload_form_text(self.cleaned_data["file"])


class TasksFromRunForm(forms.Form):
    run = forms.ModelChoiceField(queryset=Run.objects.none())
    step_min = forms.IntegerField(min_value=0, initial=0, label="From step")
    step_max = forms.IntegerField(min_value=0, initial=1000, label="To step")
    k = forms.IntegerField(min_value=2, max_value=10, initial=2, label="Completions per task (k)")
    selection = forms.ChoiceField(choices=[("random", "Random"), ("spread", "Highest reward spread in the group")])
    max_tasks = forms.IntegerField(min_value=1, max_value=50_000, initial=50, label="At most this many tasks")
    required_labels = forms.IntegerField(min_value=1, max_value=100, initial=1, label="Labels per task (overlap)")
    seed = forms.IntegerField(initial=0)

    def __init__(self, *args, project, runs, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["run"].queryset = runs
        self.fields["rubric"] = _rubric_field(project)


class HeadToHeadForm(forms.Form):
    run_a = forms.ModelChoiceField(queryset=Run.objects.none(), label="Run A")
    run_b = forms.ModelChoiceField(queryset=Run.objects.none(), label="Run B")
    max_tasks = forms.IntegerField(min_value=1, max_value=50_000, initial=50, label="At most this many tasks")
    required_labels = forms.IntegerField(min_value=1, max_value=100, initial=1, label="Labels per task (overlap)")
    seed = forms.IntegerField(initial=0)

    def __init__(self, *args, project, runs, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["run_a"].queryset = self.fields["run_b"].queryset = runs
        self.fields["rubric"] = _rubric_field(project)


class GoldForm(forms.Form):
    gold_ranking = forms.CharField(required=False, label="Gold ranking",
                                   help_text="Tiers of positions, best first, e.g. [[1], [0]] for B over A; empty clears it.")

    def clean_gold_ranking(self):
        raw = self.cleaned_data["gold_ranking"].strip()
        if not raw:
            return None
        try:
            return storable_json(raw)
        except ValueError:
            raise forms.ValidationError("Write the ranking as JSON, e.g. [[1], [0]].") from None


class LabelForm(forms.Form):
    """One judgement as the workspace posts it; works as a plain POST without JavaScript.

    k = 2: ``choice`` (a / b / tie / both_bad). k > 2: ``rank_<position>`` (1 = best; equal
    numbers tie), which the drag-and-drop list keeps in step, and ``ranked``, ticked by the
    annotator (or by any move of theirs in the list): the rank numbers start as the display order
    (shuffled when a task is made from runs; an imported task's own order), so without it an untouched form would record that order as a judgement (as
    ``choice`` has no default). Scores: ``score_<position>_<criterion id>``.
    """

    submission_key = forms.CharField(min_length=8, max_length=64, widget=forms.HiddenInput)
    rendered_at = forms.IntegerField(required=False, widget=forms.HiddenInput)
    time_spent_ms = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    critique = forms.CharField(required=False, max_length=MAX_CRITIQUE_CHARS, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, k: int, criteria, **kwargs):
        super().__init__(*args, **kwargs)
        self.k, self.criteria = k, list(criteria)
        if k == 2:
            self.fields["choice"] = forms.ChoiceField(choices=[(c, c) for c in PAIRWISE_CHOICES],
                                                      error_messages={"required": "Pick A, B, tie or both bad."})
            self.fields["strength"] = forms.TypedChoiceField(
                label="How much better", required=False, coerce=int, empty_value=None,
                choices=[("", "not said"), *PreferenceLabel.Strength.choices])
        else:
            for p in range(k):
                self.fields[f"rank_{p}"] = forms.IntegerField(min_value=1, max_value=k, initial=p + 1,
                                                              label=f"Candidate {LETTERS[p]}")
            self.fields["ranked"] = forms.BooleanField(label="Ranking", error_messages={
                "required": "put the completions in order (drag them, move them with Shift+↑/↓ or type rank "
                            "numbers), or tick “This order is my ranking” to keep the order shown"})
        for p in range(k):
            for c in self.criteria:
                low, high = c.bounds
                self.fields[f"score_{p}_{c.pk}"] = forms.IntegerField(required=False, min_value=low, max_value=high,
                                                                      label=f"Candidate {LETTERS[p]}, {c.name}")

    @staticmethod
    def new_initial() -> dict:
        return {"submission_key": uuid.uuid4().hex, "rendered_at": int(time.time() * 1000)}

    def clean(self):
        data = super().clean()
        # Scores under criteria this form does not have: the rubric was edited since the page was
        # shown. Dropping them would store the label without the scores the annotator gave.
        if any(name.startswith("score_") and name not in self.fields and value for name, value in self.data.items()):
            raise forms.ValidationError("scores on criteria this task's rubric no longer has (it was edited since "
                                        "this page was shown): reload the task and score it again")
        if self.errors:
            return data
        if self.k == 2:
            data["ranking"], data["both_bad"] = ranking_from_pairwise_choice(data["choice"])
            if data.get("strength") is not None and len(data["ranking"]) != 2:
                self.add_error("strength", "leave it unset for a tie or 'both bad': it says how much better "
                                           "the answer you prefer is")
                return data
        else:
            data["strength"] = None
            ranks = {p: data[f"rank_{p}"] for p in range(self.k)}
            data["ranking"], data["both_bad"] = ranking_from_ranks(ranks, k=self.k), False
        scores: dict[int, dict[int, int]] = {}
        for p in range(self.k):
            for c in self.criteria:
                value = data.get(f"score_{p}_{c.pk}")
                if value is not None:
                    scores.setdefault(p, {})[c.pk] = value
        data["scores"] = scores
        # Measured by annotate.js; without it (no JavaScript), since the page was rendered; without
        # either (a form posted by a script), None: label_submit takes it from the assignment.
        spent = data.get("time_spent_ms")
        if not spent and data.get("rendered_at"):
            spent = int(time.time() * 1000) - data["rendered_at"]
        data["time_spent_ms"] = min(max(spent, 0), MAX_TIME_SPENT_MS) if spent else None
        return data


class LabelRejectForm(forms.Form):
    """Why a label (or all of an annotator's) is rejected: optional, kept with the label."""

    reason = forms.CharField(max_length=500, required=False, strip=True,
                             widget=forms.TextInput(attrs={"placeholder": "reason (optional)", "maxlength": 500,
                                                            "aria-label": "Reason (optional)"}))
