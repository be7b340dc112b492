"""Incidents (read; declare one: operator) and follow-ups (read)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers
from rest_framework.response import Response

from api import serializers as s
from api.permissions import needs
from api.resources.base import ReadViewSet, check_form, query_filters
from dr_portal.lib.roles import OPERATOR, require_role
from incidents import scoping
from incidents.forms import IncidentForm
from incidents.models import FollowUp, Incident, IncidentStatus


class IncidentFilters(serializers.Serializer):
    status = serializers.ChoiceField(choices=IncidentStatus.choices, required=False)


class IncidentViewSet(mixins.CreateModelMixin, ReadViewSet):
    serializer_class = s.IncidentSerializer
    detail_serializer_class = s.IncidentDetailSerializer
    lookup_field = "identifier"
    lookup_value_regex = r"[A-Za-z0-9-]+"
    system_scoped = True  # an incident's systems are those it links to (incidents.scoping)

    def filter_queryset(self, queryset):
        return scoping.scope_incidents(super().filter_queryset(queryset), self.request.user)

    def get_queryset(self):
        incidents = Incident.objects.select_related("created_by")
        if self.action == "list":
            return incidents.filter(**query_filters(IncidentFilters, self.request))
        return incidents.prefetch_related("timeline")

    @extend_schema(parameters=[IncidentFilters])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=s.IncidentCreateSerializer,
        responses={201: s.IncidentDetailSerializer},
        summary="Declare an incident (operator)",
    )
    @needs(OPERATOR)
    def create(self, request, *args, **kwargs):
        """Validated by the portal's incident form, declared like the portal's page does.

        A new incident links to nothing yet, so it belongs to no system: global operators."""
        require_role(request.user, OPERATOR)
        body = s.IncidentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = {k: v for k, v in body.validated_data.items() if v not in (None, "")}
        form = IncidentForm(_with_defaults(values))
        check_form(form)
        incident = form.declare(request.user)
        return Response(s.IncidentDetailSerializer(incident).data, status=201)


def _with_defaults(values: dict) -> dict:
    """What the page's form starts with (status open, detected now, …) where not given."""
    for name in IncidentForm.Meta.fields:
        field = Incident._meta.get_field(name)
        if name not in values and field.has_default():
            values[name] = field.get_default()
    return values


class FollowUpFilters(serializers.Serializer):
    done = serializers.BooleanField(required=False, allow_null=True, default=None)


class FollowUpViewSet(ReadViewSet):
    serializer_class = s.FollowUpSerializer
    system_scoped = True  # those of the incidents and drill runs the caller sees

    def filter_queryset(self, queryset):
        return scoping.scope_followups(super().filter_queryset(queryset), self.request.user)

    def get_queryset(self):
        items = FollowUp.objects.select_related("owner_contact", "owner_user", "content_type")
        if self.action == "list":
            return items.filter(**query_filters(FollowUpFilters, self.request))
        return items

    @extend_schema(parameters=[OpenApiParameter("done", bool, description="Done or open.")])
    def list(self, request, *args, **kwargs):
        """Follow-ups of incidents and drills, newest first."""
        return super().list(request, *args, **kwargs)
