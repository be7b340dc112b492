"""The dashboard's pages, mounted at the site root (names unchanged: no namespace)."""

from django.urls import path

from dashboard import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("metrics", views.metrics_view, name="metrics"),
    path("dashboard/fragment", views.dashboard_fragment, name="dashboard_fragment"),
    path("banners", views.banners, name="banners"),
    path("compliance/", views.compliance_page, name="compliance"),
    path("compliance/pdf", views.compliance_pdf, name="compliance_pdf"),
]
