from django.urls import path

from recovery.failover import views

app_name = "failover"
urlpatterns = [
    path("", views.runbook_list, name="index"),
    path("runbooks/new/", views.runbook_create, name="runbook_create"),
    path("runbooks/from-template/", views.runbook_from_template, name="from_template"),
    path("runbooks/<int:pk>/", views.runbook_detail, name="runbook"),
    path("runbooks/<int:pk>/edit/", views.runbook_edit, name="runbook_edit"),
    path("runbooks/<int:pk>/steps/new/", views.step_edit, name="step_create"),
    path("runbooks/<int:pk>/steps/<int:step_pk>/", views.step_edit, name="step_edit"),
    path("runbooks/<int:pk>/steps/<int:step_pk>/delete/", views.step_delete, name="step_delete"),
    path("runbooks/<int:pk>/run/", views.start_run, name="start_run"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/progress/", views.run_progress, name="run_progress"),
    path("runs/<int:pk>/print/", views.run_print, name="run_print"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/steps/<int:step_run_pk>/confirm/", views.step_confirm, name="step_confirm"),
]
