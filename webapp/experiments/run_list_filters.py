"""The runs list's filters: a GET form (name, kind, status, tag, conditions on settings and metrics,
creation dates) and a metric to show and sort by; and the run page's notes form."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms

from webapp.experiments.models import RunKind, RunStatus
from webapp.experiments.run_search import EXAMPLE, RunSearchError, conditions_parse

ORDERS = [("", "Newest first"), ("desc", "Metric, highest first"), ("asc", "Metric, lowest first")]


class RunListFilterForm(forms.Form):
    q = forms.CharField(label="Name contains", required=False, max_length=200, strip=True)
    tag = forms.CharField(label="Tag", required=False, max_length=40, strip=True)
    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "Any kind"), *RunKind.choices])
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *RunStatus.choices])
    where = forms.CharField(label="Where", required=False, max_length=1000, strip=True,
                            widget=forms.TextInput(attrs={"placeholder": EXAMPLE, "title": f"e.g. {EXAMPLE}"}),
                            help_text="Settings (config.…, as the run's config names them) and metrics' latest "
                                      f"values (metrics.…) joined by and, e.g. {EXAMPLE}.")
    created_after = forms.DateField(label="Created on or after", required=False,
                                    widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    created_before = forms.DateField(label="Created on or before", required=False,
                                     widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    metric = forms.ChoiceField(label="Metric column", required=False)
    order = forms.ChoiceField(label="Order", required=False, choices=ORDERS)

    def __init__(self, data, *, metric_keys: list[str]):
        super().__init__(data)
        self.fields["metric"].choices = [("", "None"), *((key, key) for key in metric_keys)]

    def clean_where(self):
        try:
            return conditions_parse(self.cleaned_data["where"])
        except RunSearchError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("order") and not cleaned.get("metric") and "metric" not in self.errors:
            self.add_error("order", "Choose a metric column to order by.")
        after, before = cleaned.get("created_after"), cleaned.get("created_before")
        if after and before and before < after:
            self.add_error("created_before", f"{before:%Y-%m-%d} is before {after:%Y-%m-%d}, the day the range starts.")
        return cleaned

    def filters(self) -> dict:
        """``run_list`` keyword arguments from the fields that are valid (an invalid one filters
        nothing and shows its error); call after ``is_valid()``."""
        data = self.cleaned_data
        metric = data.get("metric") or ""
        return {"kind": data.get("kind") or None, "status": data.get("status") or None,
                "name_contains": data.get("q") or "", "tag": data.get("tag") or "", "where": data.get("where") or [],
                "created_after": data.get("created_after"), "created_before": data.get("created_before"),
                "metric": metric,
                "metric_order": (data.get("order") or "") if metric else ""}

    def problems(self) -> list[str]:
        """Each invalid filter's error, naming it; the list is shown without that filter."""
        return [f"{self.fields[name].label}: {error} It is left out." for name, errors in self.errors.items()
                for error in errors]

    def tag_query(self, tag: str) -> str:
        """The query of a link to the list filtered by ``tag``: the other filters as they were asked
        for (as the pager keeps them), any other tag replaced, back to the first page; URL-encoded."""
        pairs = [(name, tag if name == "tag" else self.data.get(name, "")) for name in self.fields]
        return "?" + urlencode([(name, value) for name, value in pairs if value])

    def narrows(self) -> bool:
        """True when a valid filter leaves runs out (the metric column alone leaves none out)."""
        filters = self.filters()
        return any(filters[name] for name in ("kind", "status", "name_contains", "tag", "where", "created_after",
                                                 "created_before"))


class RunNotesForm(forms.Form):
    """The run page's notes: its name, tags (comma-separated) and a Markdown description."""

    name = forms.CharField(max_length=200)
    tags = forms.CharField(required=False, max_length=2000, help_text="Comma-separated, e.g. baseline, lr-sweep.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 5}),
                                  help_text="Markdown: what this run tries, what came of it.")

    def clean_tags(self) -> list[str]:
        return self.cleaned_data["tags"].split(",")
