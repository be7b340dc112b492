from django.urls import path

from drills import views

app_name = "drills"
urlpatterns = [
    path("", views.index, name="index"),
    path("coverage/", views.coverage, name="coverage"),
    path("plans/new/", views.plan_edit, name="plan_new"),
    path("plans/<int:pk>/", views.plan_detail, name="plan"),
    path("plans/<int:pk>/edit/", views.plan_edit, name="plan_edit"),
    path("plans/<int:pk>/delete/", views.plan_delete, name="plan_delete"),
    path("plans/<int:pk>/start/", views.plan_start, name="plan_start"),
    path("plans/<int:plan_pk>/scenarios/new/", views.scenario_edit, name="scenario_new"),
    path("plans/<int:plan_pk>/scenarios/<int:pk>/edit/", views.scenario_edit, name="scenario_edit"),
    path(
        "plans/<int:plan_pk>/scenarios/<int:pk>/delete/",
        views.scenario_delete,
        name="scenario_delete",
    ),
    path("plans/<int:plan_pk>/scenarios/<int:pk>/move/", views.scenario_move, name="scenario_move"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/live/", views.run_live, name="run_live"),
    path("runs/<int:pk>/end/", views.run_end, name="run_end"),
    path("runs/<int:pk>/abort/", views.run_abort, name="run_abort"),
    path("runs/<int:pk>/cleanup/", views.run_cleanup, name="run_cleanup"),
    path("runs/<int:pk>/findings/", views.finding_add, name="finding_add"),
    path("runs/<int:pk>/follow-ups/", views.followup_add, name="followup_add"),
    path("runs/<int:pk>/report/", views.run_report, name="report"),
    path("runs/<int:pk>/report.pdf", views.run_pdf, name="pdf"),
    path(
        "runs/<int:pk>/scenarios/<int:spk>/complete/",
        views.scenario_complete,
        name="scenario_complete",
    ),
    path("runs/<int:pk>/items/<int:ipk>/tick/", views.item_tick, name="item_tick"),
    path("runs/<int:pk>/acks/<int:apk>/tick/", views.ack_tick, name="ack_tick"),
    # Public: the signed token is the credential (see dr_portal.middleware PUBLIC_PREFIXES).
    path("ack/<str:token>/", views.ack_link, name="ack"),
]
