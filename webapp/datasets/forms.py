from django import forms

from webapp.core.uploads import upload_form_text
from webapp.datasets.parquet_rows import parquet_upload


class DatasetImportForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    file = forms.FileField(help_text="JSONL (one object per line: prompt or messages, optional reference, metadata), "
                                     "CSV with a header: a prompt column, or messages holding them as JSON; "
                                     "quote a field that holds a comma; or Parquet with the same columns "
                                     "(verl's data files, a Hugging Face dataset's shard).")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        try:
            parquet = parquet_upload(upload)
        except ValueError as exc:
            raise forms.ValidationError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None
        return parquet or (upload.name, upload_form_text(upload))
