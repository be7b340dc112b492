"""Render a Django template to PDF with WeasyPrint (incident, drill and compliance reports).

    from dr_portal.lib.pdf import pdf_response
    return pdf_response("incidents/report.html", context, "INC-2026-001.pdf", request=request)

The HTML comes from the normal (autoescaping) template engine, so user text stays text in
the PDF. Static files ({% static %} URLs) are read from disk through the staticfiles finders;
every other URL is refused, so a report never fetches anything from the network.
Fonts: WeasyPrint uses fontconfig; the project installs fonts-dejavu-core (.ci/test-deps).
"""

import logging
import mimetypes
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.template.loader import render_to_string

DEFAULT_BASE_URL = "http://localhost/"

# fontTools logs every table it reads at DEBUG: thousands of lines per PDF.
logging.getLogger("fontTools").setLevel(logging.WARNING)


class RefusedURL(ValueError):
    pass


def _static_path(url: str):
    path = urlsplit(url).path
    prefix = "/" + settings.STATIC_URL.strip("/") + "/"
    if not path.startswith(prefix):
        return None
    relative = path[len(prefix) :]
    if ".." in relative.split("/"):
        return None
    found = finders.find(relative)
    if found:
        return found
    if settings.STATIC_ROOT:
        candidate = settings.STATIC_ROOT / relative
        if candidate.is_file():
            return str(candidate)
    return None


def url_fetcher(url: str, timeout=10, ssl_context=None, **kwargs):
    """WeasyPrint fetcher: static files from disk, data: URLs, nothing else."""
    if url.startswith("data:"):
        # weasyprint (cairo, pango: a third of a second) loads only when a PDF is made.
        from weasyprint.urls import default_url_fetcher  # noqa: PLC0415

        return default_url_fetcher(url, timeout=timeout, ssl_context=ssl_context, **kwargs)
    path = _static_path(url)
    if path is None:
        raise RefusedURL(f"PDF rendering does not fetch {url}")
    with open(path, "rb") as handle:
        data = handle.read()
    mime, _ = mimetypes.guess_type(path)
    return {"string": data, "mime_type": mime or "application/octet-stream", "filename": path}


def render_pdf(
    template_name: str, context: dict, request=None, base_url: str | None = None
) -> bytes:
    """The template rendered to HTML (autoescaped) and then to PDF bytes."""
    from weasyprint import HTML  # noqa: PLC0415 (heavy: only when a PDF is made)

    html = render_to_string(template_name, context, request=request)
    if base_url is None:
        base_url = request.build_absolute_uri("/") if request is not None else DEFAULT_BASE_URL
    return HTML(string=html, base_url=base_url, url_fetcher=url_fetcher).write_pdf()


def pdf_response(template_name: str, context: dict, filename: str, request=None) -> HttpResponse:
    """An attachment download of the rendered PDF."""
    data = render_pdf(template_name, context, request=request)
    response = HttpResponse(data, content_type="application/pdf")
    safe = "".join(c for c in filename if c.isalnum() or c in "-_.") or "report.pdf"
    response["Content-Disposition"] = f'attachment; filename="{safe}"'
    response["Content-Length"] = str(len(data))
    return response
