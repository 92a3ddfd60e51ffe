from django import forms
from django.contrib.auth import get_user_model

from webapp.projects.models import Project, Role

_USERNAME_MAX = get_user_model()._meta.get_field(get_user_model().USERNAME_FIELD).max_length


class ProjectCreateForm(forms.Form):
    name = forms.CharField(max_length=Project._meta.get_field("name").max_length,
                           help_text="Shown in the navigation; unique among your projects.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    annotation_guidelines = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}),
                                            help_text="Markdown shown to annotators above every task.")


class ProjectSettingsForm(ProjectCreateForm):
    """The same fields, filled with the project's values."""


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=_USERNAME_MAX)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)
    # Sent by the confirmation offered for an account someone else created: its creator's name.
    account_created_by = forms.CharField(max_length=_USERNAME_MAX, required=False, widget=forms.HiddenInput)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
