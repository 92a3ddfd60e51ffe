from django import forms

from webapp.core.uploads import upload_form_text


class PairImportForm(forms.Form):
    name = forms.CharField(max_length=120)
    file = forms.FileField(help_text='JSONL, one pair a line: {"prompt": ..., "chosen": ..., "rejected": ...}; '
                                     "the prompt may be a list of chat messages.")

    def clean_file(self):
        return upload_form_text(self.cleaned_data["file"])
