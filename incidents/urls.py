from django.urls import path

from incidents import views

app_name = "incidents"
urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.incident_new, name="new"),
    path("follow-ups/", views.followups, name="followups"),
    path("follow-ups/<int:pk>/toggle/", views.followup_toggle, name="followup_toggle"),
    path("contacts/", views.contacts, name="contacts"),
    path("contacts/new/", views.contact_edit, name="contact_new"),
    path("contacts/<int:pk>/edit/", views.contact_edit, name="contact_edit"),
    path("contacts/<int:pk>/delete/", views.contact_delete, name="contact_delete"),
    path("contacts/export.csv", views.contacts_export, name="contacts_export"),
    path("contacts/import/", views.contacts_import, name="contacts_import"),
    path("webhooks/new/", views.webhook_new, name="webhook_new"),
    path("webhooks/<int:pk>/delete/", views.webhook_delete, name="webhook_delete"),
    path("alerts/", views.alerts, name="alerts"),
    path("alerts/test/", views.send_test, name="send_test"),
    path("alerts/<int:pk>/silence/", views.alert_silence, name="alert_silence"),
    path("alerts/<int:pk>/unsilence/", views.alert_unsilence, name="alert_unsilence"),
    path("maintenance/", views.maintenance, name="maintenance"),
    path("maintenance/<int:pk>/end/", views.maintenance_end, name="maintenance_end"),
    path("<str:identifier>/", views.incident_detail, name="detail"),
    path("<str:identifier>/edit/", views.incident_edit, name="edit"),
    path("<str:identifier>/status/", views.incident_status, name="status"),
    path("<str:identifier>/timeline/", views.timeline_add, name="timeline_add"),
    path(
        "<str:identifier>/timeline/<int:pk>/delete/", views.timeline_delete, name="timeline_delete"
    ),
    path("<str:identifier>/follow-ups/", views.followup_add, name="followup_add"),
    path("<str:identifier>/links/", views.link_add, name="link_add"),
    path("<str:identifier>/links/<int:pk>/delete/", views.link_remove, name="link_remove"),
    path("<str:identifier>/report/", views.incident_report, name="report"),
    path("<str:identifier>/report.pdf", views.incident_pdf, name="pdf"),
    path("<str:identifier>/report.md", views.incident_markdown, name="markdown"),
]
