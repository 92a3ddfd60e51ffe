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


class SubmissionChanged(LabelConflict):
    """A retry (the same submission key) carrying another judgement than the label it stored:
    refused like a second judgement (409), so a changed choice is never answered "saved"."""

    def __init__(self, label):
        self.label = label
        FeedbackError.__init__(self, f"this submission was saved already (label {label.pk}) with another judgement, "
                               "which stands; the changed one was not saved. To change a judgement, withdraw the "
                               "label first (within the undo window) and label the task again",
                               field="submission_key")


class TaskFull(FeedbackError):
    """A rejected label cannot be restored: its task has the labels it wants (its slot was filled
    again after the rejection). Nothing changes; the API answers 409."""

    def __init__(self, *, label_id: int, task_id: int, label_count: int, required_labels: int):
        wanted = f"{required_labels} label{'s' if required_labels != 1 else ''}"
        super().__init__(f"task {task_id} has {label_count} counting label{'s' if label_count != 1 else ''} of the "
                         f"{wanted} it wants: restoring label {label_id} would put it over its overlap. Reject one "
                         "of its labels first to count this one instead", field="label")


class TaskFilled(FeedbackError):
    """A new label for a task that has the labels it wants already (its overlap, ``required_labels``):
    others labelled it while this annotator's assignment lapsed, or the label came over the API
    without one. Also a label from an annotator without a live assignment of the task when the
    slots left are ``held`` by other annotators' live assignments (they are labelling it now; one
    may have just undone their label). Nothing is stored; the annotator's assignment of the task
    is released. The API answers 409; a gold task, which every annotator labels, is never full."""

    def __init__(self, *, task_id: int, label_count: int, required_labels: int, held: int = 0):
        self.task_id, self.label_count, self.required_labels = task_id, label_count, required_labels
        self.held = held
        wanted = f"{required_labels} label{'s' if required_labels != 1 else ''}"
        if held:
            has = f"{label_count} counting label{'s' if label_count != 1 else ''} of the {wanted} it wants"
            slots = "slot left is" if required_labels - label_count == 1 else "slots left are"
            who = "another annotator" if held == 1 else f"{held} other annotators"
            super().__init__(f"task {task_id} has {has}, and the {slots} held by {who} labelling it now (an open "
                             "assignment); nothing was stored (this label would take a slot held for them)",
                             field="task")
            return
        has = f"the {wanted}" if label_count == required_labels else f"{label_count} counting labels of the {wanted}"
        super().__init__(f"task {task_id} already has {has} it wants; nothing was stored (this label would put it "
                         "over its overlap)", field="task")
