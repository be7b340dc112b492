from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from api import views as api_views
from dr_portal import views

urlpatterns = [
    path("", include("dashboard.urls")),
    path("escrow/confirm/", views.confirm_escrow, name="confirm_escrow"),
    path("reports/signatures/<int:pk>.sig", views.report_signature, name="report_signature"),
    path("reports/signing-key.pem", views.signing_key, name="signing_key"),
    path("health/live", views.health_live, name="health_live"),
    path("health/ready", views.health_ready, name="health_ready"),
    path("health/destinations", views.health_destinations, name="health_destinations"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/2fa/", include("dr_portal.two_factor.urls")),
    path("accounts/oidc/", include("dr_portal.sso_views")),
    path("accounts/tokens/", api_views.token_list, name="api_tokens"),
    path("accounts/tokens/<int:pk>/revoke/", api_views.token_revoke, name="api_token_revoke"),
    path("api/", include("api.urls")),
    path("backups/", include("backups.urls")),
    path("recovery/", include("recovery.urls")),
    path("drills/", include("drills.urls")),
    path("incidents/", include("incidents.urls")),
    path("admin/", admin.site.urls),
]

handler403 = "dr_portal.errors.forbidden"
handler500 = "dr_portal.errors.server_error"
