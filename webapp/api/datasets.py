"""Prompt datasets: list, import a JSONL/CSV file (all or nothing), read, page through prompts, delete."""

from django.db.models import Count
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from webapp.api.base import BodySerializer, SteerListApi, SteerRetrieveApi, deleted, field_error
from webapp.api.parsers import JSONParser
from webapp.api.permissions import RESEARCH, scoped_project_ids
from webapp.core.uploads import UploadText, upload_text
from webapp.datasets.parquet_rows import parquet_upload
from webapp.datasets.errors import DatasetError, DatasetImportError, DatasetInUse
from webapp.datasets.models import Prompt, PromptDataset
from webapp.datasets.selectors import dataset_list
from webapp.datasets.services import dataset_delete, dataset_import


class DatasetOutputSerializer(serializers.ModelSerializer):
    prompt_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = PromptDataset
        fields = ["id", "project", "name", "description", "prompt_count", "created_at"]


class PromptOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Prompt
        fields = ["id", "dataset", "index", "text", "messages", "reference", "metadata"]


class DatasetListCreateApi(SteerListApi):
    """GET: the project's datasets. POST: import a JSONL or CSV file as a new dataset.

    The import is atomic: if any line is bad nothing is stored, and the answer lists every
    bad line by its number.
    """

    class DatasetImportTextInputSerializer(BodySerializer):
        """The import's fields a JSON or form-encoded body can carry: all but the upload."""

        name = serializers.CharField(max_length=120)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        content = serializers.CharField(
            required=False, trim_whitespace=False, help_text="The file's text, instead of an upload."
        )
        format = serializers.ChoiceField(
            choices=["jsonl", "csv"], required=False, help_text="Defaults to the file's extension, else jsonl."
        )

    class DatasetImportInputSerializer(DatasetImportTextInputSerializer):
        """The import's fields in a multipart body: the upload too."""

        file = serializers.FileField(required=False, help_text="A .jsonl or .csv file (multipart upload).")

    InputSerializer = DatasetImportInputSerializer
    project_roles = RESEARCH
    serializer_class = DatasetOutputSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    ordering_fields = ["id", "name", "created_at"]
    ordering = ["id"]

    def get_queryset(self):
        return dataset_list(project=self.request.membership.project)

    @extend_schema(request={"application/json": DatasetImportTextInputSerializer,
                            "multipart/form-data": InputSerializer,
                            "application/x-www-form-urlencoded": DatasetImportTextInputSerializer},
                   responses={201: DatasetOutputSerializer})
    def post(self, request, project_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        filename, content = self._file(data.validated_data)
        try:
            dataset = dataset_import(
                project=request.membership.project,
                name=data.validated_data["name"],
                description=data.validated_data["description"],
                filename=filename,
                content=content,
                user=request.user,
            )
        except DatasetError as exc:
            raise field_error(exc.field, exc.message) from exc
        except DatasetImportError as exc:
            raise field_error("file", str(exc)) from exc
        dataset = dataset_list(project=request.membership.project).get(pk=dataset.pk)
        return Response(DatasetOutputSerializer(dataset).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _file(data: dict) -> tuple[str, str | UploadText]:
        upload, content = data.get("file"), data.get("content")
        if (upload is None) == (content is None):
            raise field_error("file", "send exactly one of 'file' (an upload) or 'content' (the text)")
        filename = upload.name if upload is not None else "upload.jsonl"
        if data.get("format"):
            filename = f"upload.{data['format']}"
        if upload is not None:
            try:
                if parquet := parquet_upload(upload):  # verl's and the Hub's files, read row group by row group
                    return parquet
                content = upload_text(upload)
            except ValueError as exc:
                raise field_error("file", str(exc)) from exc
        return filename, content


class DatasetDetailApi(SteerRetrieveApi):
    """GET: the dataset. DELETE: delete it with its prompts (204); 409 if runs used it, since a
    run keeps the dataset it was trained on (delete those runs first)."""

    project_roles = RESEARCH
    serializer_class = DatasetOutputSerializer
    lookup_url_kwarg = "dataset_id"

    def get_queryset(self):
        ids = scoped_project_ids(self.request, RESEARCH)
        return PromptDataset.objects.filter(project_id__in=ids).annotate(prompt_count=Count("prompts"))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, dataset_id: int):
        dataset = self.get_object()
        return deleted(lambda: dataset_delete(dataset_id=dataset.id), refusals=(DatasetInUse,),
                       gone=PromptDataset.DoesNotExist, what="dataset")


class PromptListApi(SteerListApi):
    """The dataset's prompts in order, cursor-paginated."""

    project_roles = RESEARCH
    serializer_class = PromptOutputSerializer
    ordering_fields = ["id", "index"]  # id, as every list (docs/api.md)
    ordering = ["index"]

    def get_queryset(self):
        ids = scoped_project_ids(self.request, RESEARCH)
        dataset = PromptDataset.objects.filter(project_id__in=ids, pk=self.kwargs["dataset_id"]).first()
        if dataset is None:
            raise Http404("No such dataset.")
        return Prompt.objects.filter(dataset=dataset)
