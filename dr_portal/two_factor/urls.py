from django.urls import path

from dr_portal.two_factor import views

app_name = "two_factor"
urlpatterns = [
    path("", views.status, name="status"),
    path("enrol/", views.enrol, name="enrol"),
    path("verify/", views.verify, name="verify"),
    path("recovery-codes/", views.regenerate_codes, name="regenerate_codes"),
    path("disable/", views.disable, name="disable"),
]
