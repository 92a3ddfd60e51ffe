import uuid

from django import forms


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. 'notebook' or 'trl-cluster'.")
    # One per rendered form: the same form posted again (a reload of the page that showed the
    # token) makes no second token.
    submission_key = forms.CharField(min_length=8, max_length=64, widget=forms.HiddenInput,
                                     initial=lambda: uuid.uuid4().hex)
