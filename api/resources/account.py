"""Who am I: the caller, the role this call has, and the token used (for scripts to check)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.models import ApiToken
from api.resources.base import ApiView
from dr_portal.lib.roles import system_roles, top_role


class TokenInfo(serializers.Serializer):
    prefix = serializers.CharField()
    name = serializers.CharField()
    role = serializers.CharField(help_text="The token's role ceiling.")
    expires_at = serializers.DateTimeField()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.CharField(
        help_text="The role of this call: min(token ceiling, user's role)."
    )
    token = TokenInfo(allow_null=True)
    systems = serializers.DictField(
        child=serializers.CharField(),
        help_text="System id: the role of this call on that system, where above `role`.",
    )


class MeView(ApiView):
    system_scoped = True  # open to a user with roles on some systems only

    @extend_schema(responses=MeSerializer, summary="The caller and the role of this call")
    def get(self, request):
        token = request.auth if isinstance(request.auth, ApiToken) else None
        return Response(
            {
                "username": request.user.get_username(),
                "role": top_role(request.user),
                "token": TokenInfo(token).data if token else None,
                "systems": {str(k): v for k, v in system_roles(request.user).items()},
            }
        )
