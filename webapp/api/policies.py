"""Policies (the models a run starts from): list, register, read, delete."""

from django.db import IntegrityError
from django.db.models import Count
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from webapp.api.base import MAX_ID, BodySerializer, SteerListApi, SteerRetrieveApi, deleted, field_error
from webapp.api.permissions import RESEARCH, scoped_project_ids
from webapp.experiments.errors import PolicyError, PolicyInUse
from webapp.experiments.models import PolicyModel
from webapp.experiments.policies import policy_create, policy_delete
from webapp.experiments.selectors import policy_list


class PolicyOutputSerializer(serializers.ModelSerializer):
    run_count = serializers.IntegerField(read_only=True, help_text="Runs that trained or evaluated it.")
    checkpoint_run = serializers.IntegerField(source="checkpoint.run_id", read_only=True, allow_null=True,
                                              default=None)
    checkpoint_step = serializers.IntegerField(source="checkpoint.step", read_only=True, allow_null=True,
                                               default=None)
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True,
                                       default=None)

    class Meta:
        model = PolicyModel
        fields = ["id", "project", "name", "source", "reference", "checkpoint", "checkpoint_run",
                  "checkpoint_step", "run_count", "created_by", "created_at"]


class PolicyListCreateApi(SteerListApi):
    """GET: the project's policies. POST: register one.

    ``source`` is ``builtin`` (``reference``: a built-in model's name), ``checkpoint``
    (``checkpoint``: the id of a checkpoint of one of the project's finished policy runs, to
    train further from it), ``tiny`` (a small random model whose shape comes from the run's
    config) or ``path`` (``reference``: an absolute folder on the workers; staff only).
    """

    class PolicyInputSerializer(BodySerializer):
        name = serializers.CharField(max_length=120)
        source = serializers.ChoiceField(choices=PolicyModel.Source.values)
        reference = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
        checkpoint = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1,
                                              max_value=MAX_ID)

    InputSerializer = PolicyInputSerializer
    project_roles = RESEARCH
    serializer_class = PolicyOutputSerializer
    ordering_fields = ["id", "name", "created_at"]
    ordering = ["id"]

    def get_queryset(self):
        return policy_list(project=self.request.membership.project)

    @extend_schema(request=InputSerializer, responses={201: PolicyOutputSerializer})
    def post(self, request, project_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project = request.membership.project
        try:
            policy = policy_create(project=project, user=request.user, name=values["name"], source=values["source"],
                                   reference=values["reference"], checkpoint_id=values["checkpoint"])
        except PolicyError as exc:
            raise field_error(exc.field, exc.message) from exc
        except IntegrityError as exc:  # a concurrent registration took the name
            raise field_error("name", "a policy with this name already exists in this project") from exc
        policy = policy_list(project=project).get(pk=policy.pk)
        return Response(PolicyOutputSerializer(policy).data, status=status.HTTP_201_CREATED)


class PolicyDetailApi(SteerRetrieveApi):
    """GET: the policy. DELETE: delete it (204); 409 if runs trained or evaluated it, since a run keeps
    the policy it started from (delete those runs first). A checkpoint's files stay with its run."""

    project_roles = RESEARCH
    serializer_class = PolicyOutputSerializer
    lookup_url_kwarg = "policy_id"

    def get_queryset(self):
        ids = scoped_project_ids(self.request, RESEARCH)
        return (PolicyModel.objects.filter(project_id__in=ids).select_related("checkpoint", "created_by")
                .annotate(run_count=Count("runs")))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, policy_id: int):
        policy = self.get_object()
        return deleted(lambda: policy_delete(policy_id=policy.id), refusals=(PolicyInUse,),
                       gone=PolicyModel.DoesNotExist, what="policy")
