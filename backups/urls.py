from django.urls import path

from backups import views

app_name = "backups"
urlpatterns = [
    path("", views.index, name="index"),
    path("sources/", views.source_list, name="source_list"),
    path("sources/new/", views.source_create, name="source_create"),
    path("sources/<int:pk>/", views.source_detail, name="source_detail"),
    path("sources/<int:pk>/edit/", views.source_edit, name="source_edit"),
    path("sources/test/", views.source_test, name="source_test_new"),
    path("sources/<int:pk>/test/", views.source_test, name="source_test"),
    path("sources/<int:pk>/pitr-check/", views.source_pitr_check, name="source_pitr_check"),
    path("destinations/", views.destination_list, name="destination_list"),
    path("destinations/new/", views.destination_create, name="destination_create"),
    path("destinations/<int:pk>/", views.destination_detail, name="destination_detail"),
    path("destinations/<int:pk>/edit/", views.destination_edit, name="destination_edit"),
    path("destinations/<int:pk>/test/", views.destination_test, name="destination_test"),
    path(
        "copies/<int:pk>/restore-archive/",
        views.copy_restore_archive,
        name="copy_restore_archive",
    ),
    path("jobs/", views.job_list, name="job_list"),
    path("jobs/new/", views.job_create, name="job_create"),
    path("jobs/<int:pk>/", views.job_detail, name="job_detail"),
    path("jobs/<int:pk>/edit/", views.job_edit, name="job_edit"),
    path("jobs/<int:pk>/delete/", views.job_delete, name="job_delete"),
    path("jobs/<int:pk>/run/", views.job_run_now, name="job_run_now"),
    path("runs/", views.run_list, name="run_list"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("runs/<int:pk>/progress/", views.run_progress, name="run_progress"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("retention/", views.retention_preview, name="retention"),
]
