"""What every API view shares: the call is audited, bad input is a 400 with the portal's
own messages, a busy resource is a 409."""

from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from api import calls
from dr_portal.lib import roles


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource is busy."
    default_code = "conflict"


class Audited:
    """Writes, refusals and failed sign-ins go to the audit log; reads to the log."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        calls.record_call(request, response)
        return response


class ReadViewSet(Audited, viewsets.ReadOnlyModelViewSet):
    """List (cursor-paged, newest first) and detail; write actions add @action methods."""

    detail_serializer_class = None
    lookup_value_regex = r"[0-9]+"  # anything else is the JSON 404 of NotFoundView
    # The rows' system (e.g. "source__system"): lists and details show only the systems
    # the caller may see (roles.scope); None: rows of no system, for global roles only.
    system_path = None

    @property
    def system_scoped(self):
        return self.system_path is not None

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        if self.system_path is None:
            return queryset
        return roles.scope(queryset, self.request.user, self.system_path)

    def get_serializer_class(self):
        if self.action != "list" and self.detail_serializer_class is not None:
            return self.detail_serializer_class
        return self.serializer_class


class ApiView(Audited, APIView):
    pass


def check_form(form) -> None:
    """Validate with the portal's form: the same rules and messages as the page."""
    if not form.is_valid():
        errors = {
            ("non_field_errors" if field == "__all__" else field): messages
            for field, messages in form.errors.items()
        }
        raise serializers.ValidationError(errors)


def accepted(serializer_class, instance) -> Response:
    """202: the run is queued; its URL is where to poll."""
    return Response(serializer_class(instance).data, status=status.HTTP_202_ACCEPTED)


def query_filters(serializer_class, request) -> dict:
    """Validated query parameters (400 with the reason when one is wrong)."""
    params = serializer_class(data=request.query_params)
    params.is_valid(raise_exception=True)
    return {k: v for k, v in params.validated_data.items() if v not in (None, "")}


class NotFoundView(ApiView):
    """Any other path under /api/: a JSON 404, not the portal's HTML page."""

    schema = None  # not an operation

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authenticated, allowed, throttled first
        raise exceptions.NotFound("No such API resource.")
