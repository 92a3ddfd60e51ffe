class FeedbackError(Exception):
    """A feedback request that cannot be honoured; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class LabelConflict(FeedbackError):
    """The annotator has labelled the task already, under another submission key: the new
    judgement is refused (the API answers 409), the stored label stays as it is."""

    def __init__(self, label):
        self.label = label
        super().__init__(f"you have labelled this task already (label {label.pk}); this submission, under a new "
                         "submission key, was not saved. A retry must send the key of the label it repeats; to "
                         "change a judgement, withdraw the label first (within the undo window)",
                         field="submission_key")
