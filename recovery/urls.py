from django.urls import include, path

from recovery import views

app_name = "recovery"
urlpatterns = [
    path("", views.index, name="index"),
    path("failover/", include("recovery.failover.urls")),
]
