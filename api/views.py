"""The portal's API token page (Account > API tokens): create one, shown once; revoke."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from api.forms import TokenForm
from api.models import ApiToken
from dr_portal import audit
from dr_portal.lib.roles import system_role_required


@require_http_methods(["GET", "POST"])
@system_role_required()
def token_list(request):
    """Your tokens; a POST creates one and shows it on this response only (never again)."""
    form = TokenForm(request.POST or None, user=request.user)
    created = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            token, created = ApiToken.issue(
                request.user, name=data["name"], role=data["role"], days=data["days"]
            )
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            audit.record(
                "create API token",
                token,
                user=request.user,
                detail=f"{token.prefix}… '{token.name}' role {token.role}, "
                f"expires {token.expires_at:%Y-%m-%d}",
            )
            form = TokenForm(user=request.user)
    tokens = ApiToken.objects.filter(user=request.user).select_related("revoked_by")
    response = render(
        request,
        "api/tokens.html",
        {"form": form, "tokens": tokens, "created": created},
        status=400 if request.method == "POST" and form.errors else 200,
    )
    response["Cache-Control"] = "no-store"  # the page may carry a new token
    return response


@require_POST
@system_role_required()
def token_revoke(request, pk):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if token.revoke(by=request.user):
        audit.record("revoke API token", token, user=request.user, detail=f"{token.prefix}…")
        messages.success(request, f"Token {token.prefix}… revoked: calls with it now get 401.")
    else:
        messages.info(request, f"Token {token.prefix}… was already revoked.")
    return redirect("api_tokens")
