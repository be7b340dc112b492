"""Error pages in the portal's look. The 500 page renders with no request context, so it
works when the database (sessions, users, the worker banner) is what failed."""

import logging

from django.http import HttpResponseServerError
from django.shortcuts import render
from django.template import loader

log = logging.getLogger(__name__)


def forbidden(request, exception=None):
    reason = (
        str(exception) if exception and str(exception) else "You do not have the role this needs."
    )
    return render(request, "403.html", {"reason": reason}, status=403)


def server_error(request):
    try:
        body = loader.get_template("500.html").render()
    except Exception:  # the template itself failing must still give the person a page
        log.exception("rendering 500.html failed")
        body = "<h1>Server error</h1><p><a href='/'>Back to the portal</a></p>"
    return HttpResponseServerError(body)
