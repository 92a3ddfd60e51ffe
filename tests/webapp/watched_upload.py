"""An upload that notes, as each of its lines is read, how many rows of a model are stored already:
an import that writes a batch at a time shows the counts rising while the file is still read."""

from __future__ import annotations

from webapp.core.uploads import UploadText


class Watched(UploadText):
    def __init__(self, upload, *, model):
        super().__init__(upload)
        self.model = model
        self.stored_when_read: list[int] = []

    def lines(self):
        for line in super().lines():
            self.stored_when_read.append(self.model.objects.count())
            yield line
