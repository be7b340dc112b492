from django.urls import include, path

from recovery import contents_views, partial_views, pitr_views, views

app_name = "recovery"
urlpatterns = [
    path("", views.index, name="index"),
    path("targets/", views.targets_edit, name="targets"),
    path("restore-targets/", views.restore_target_list, name="restore_targets"),
    path("restore-targets/new/", views.restore_target_new, name="restore_target_new"),
    path("restore-targets/<int:pk>/", views.restore_target_edit, name="restore_target_edit"),
    path(
        "restore-targets/<int:pk>/delete/",
        views.restore_target_delete,
        name="restore_target_delete",
    ),
    path("sources/<int:source_id>/", views.source_detail, name="source_detail"),
    path("sources/<int:source_id>/test/", views.run_test, name="run_test"),
    path("sources/<int:source_id>/try-checks/", views.try_checks, name="try_checks"),
    path("sources/<int:source_id>/restore/", views.restore_new, name="restore_new"),
    path(
        "sources/<int:source_id>/restore-to-point/",
        pitr_views.pitr_restore_new,
        name="pitr_restore_new",
    ),
    path("tests/<int:pk>/", views.test_detail, name="test_detail"),
    path("tests/<int:pk>/progress/", views.test_progress, name="test_progress"),
    path("tests/<int:pk>/accept-baseline/", views.accept_baseline, name="accept_baseline"),
    path("restores/<int:pk>/", views.restore_detail, name="restore_detail"),
    path("restores/<int:pk>/progress/", views.restore_progress, name="restore_progress"),
    path("runs/<int:pk>/contents/", contents_views.run_contents, name="run_contents"),
    path("runs/<int:pk>/contents/read/", contents_views.read_contents, name="read_contents"),
    path("runs/<int:pk>/restore-chosen/", partial_views.partial_restore, name="partial_restore"),
    path("runs/<int:pk>/preview/", partial_views.preview_table, name="preview_table"),
    path("runs/<int:pk>/compare/<int:other>/", contents_views.compare_runs, name="compare_runs"),
    path("failover/", include("recovery.failover.urls")),
]
