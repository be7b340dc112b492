from django.urls import path

from dr_portal.two_factor import views

app_name = "two_factor"

# One's own sign-in, not any system's data: a user with roles on some systems only (whom the
# role middleware keeps to system-scoped views) must reach these pages to enrol and verify.
for view in (views.status, views.enrol, views.verify, views.regenerate_codes, views.disable):
    view.system_scoped = True

urlpatterns = [
    path("", views.status, name="status"),
    path("enrol/", views.enrol, name="enrol"),
    path("verify/", views.verify, name="verify"),
    path("recovery-codes/", views.regenerate_codes, name="regenerate_codes"),
    path("disable/", views.disable, name="disable"),
]
