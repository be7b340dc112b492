"""Report PDFs handed out signed: the PDF, its detached signature kept in the register.

Every compliance, incident and drill PDF is signed with the portal's Ed25519 key
(dr_portal.lib.signing) as the exact bytes downloaded, recorded as a SignedReport (hash,
signature, key fingerprint, who, when) and audited. The `.sig` beside it is downloaded from
the report's page, or fetched by `manage.py verify_report` from the register.
"""

import hashlib

from django.http import HttpResponse
from django.urls import reverse

from dr_portal import audit
from dr_portal.lib import signing
from dr_portal.lib.pdf import render_pdf
from dr_portal.models import SignedReport


def signer() -> dict:
    """What a report prints about its signature (before it is signed: the key is known)."""
    return {"fingerprint": signing.fingerprint(), "algorithm": "Ed25519 (detached, .sig)"}


def sign_and_register(
    pdf: bytes, *, kind: str, filename: str, user_name: str, obj=None
) -> SignedReport:
    signature = signing.sign(pdf)
    report = SignedReport.objects.create(
        kind=kind,
        filename=safe_filename(filename),
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        signature=signature.hex(),
        key_fingerprint=signing.fingerprint(),
        produced_by=user_name[:150],
    )
    audit.record(
        "sign report pdf",
        obj,
        detail=f"{report.filename} sha256 {report.pdf_sha256} signed with Ed25519 key "
        f"{report.key_fingerprint} (signature #{report.pk})",
    )
    return report


def safe_filename(name: str) -> str:
    return "".join(c for c in name if c.isalnum() or c in "-_.") or "report.pdf"


def response(pdf: bytes, report: SignedReport) -> HttpResponse:
    """The PDF as an attachment; the headers say where its signature is."""
    resp = HttpResponse(pdf, content_type="application/pdf")
    resp["Content-Disposition"] = f'attachment; filename="{report.filename}"'
    resp["Content-Length"] = str(len(pdf))
    resp["X-Report-Signature"] = reverse("report_signature", args=[report.pk])
    resp["X-Signing-Key-Fingerprint"] = report.key_fingerprint
    return resp


def signed_pdf_response(template_name, context, filename, *, request, kind, obj=None):
    """Render a template to PDF with the signer printed in it, sign it, register it, send it."""
    pdf = render_pdf(template_name, context | {"signer": signer()}, request=request)
    report = sign_and_register(
        pdf, kind=kind, filename=filename, user_name=request.user.get_username(), obj=obj
    )
    return response(pdf, report)


def issued(kind: str, obj=None, limit: int = 5):
    rows = SignedReport.objects.filter(kind=kind)
    if obj is not None:
        rows = rows.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))
    return list(rows[:limit])
