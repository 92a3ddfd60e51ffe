from django import forms

from webapp.core.uploads import upload_form_text


class DatasetImportForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    file = forms.FileField(help_text="JSONL (one object per line: prompt or messages, optional reference, metadata) "
                                     "or CSV with a header: a prompt column, or messages holding them as JSON; "
                                     "quote a field that holds a comma.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        return upload.name, upload_form_text(upload)
