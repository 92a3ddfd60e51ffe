from django import forms


class PairImportForm(forms.Form):
    name = forms.CharField(max_length=120)
    file = forms.FileField(help_text='JSONL, one pair a line: {"prompt": ..., "chosen": ..., "rejected": ...}; '
                                     "the prompt may be a list of chat messages.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        try:
            return upload.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise forms.ValidationError("The file is not UTF-8 text.") from exc
