"""How the schema describes the API: its authentication (registered when api.apps loads)
and the error answers of every operation."""

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.auth.BearerTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (drp_…) from Account > API tokens in the portal.",
        }


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "api.auth.SessionAuthentication"
    name = "portalSession"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


class ErrorSerializer(serializers.Serializer):
    """DRF's error body for 401, 403, 404, 409 and 429 (a 400 names each bad field)."""

    detail = serializers.CharField()


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema plus the error answers every operation can give, so that
    schema checkers (schemathesis in tests/api) hold every response to the schema."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        errors = {"401": "No valid API token or session.", "403": "The role is too low."}
        errors["429"] = "Too many calls: wait Retry-After seconds."
        if "{" in self.path:
            errors["404"] = "No such object."
        if self.method != "GET" or self._is_list_view():
            # A 400 lists the bad fields: {"field": ["why"], "non_field_errors": [...]}.
            responses.setdefault("400", self._get_response_for_code(_field_errors(), "400"))
        for code, text in errors.items():
            responses.setdefault(
                code, self._get_response_for_code(OpenApiResponse(ErrorSerializer, text), code)
            )
        return responses


def _field_errors():
    return OpenApiResponse(
        OpenApiTypes.OBJECT, "Bad input: each field with its reasons, or detail."
    )
