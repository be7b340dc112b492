"""Report PDFs are signed (detached Ed25519): the .sig beside each verifies with
`manage.py verify_report` and with OpenSSL; a one-byte change fails."""

import base64
import io
import os
import re
import shutil
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.urls import reverse
from pypdf import PdfReader

from dr_portal import audit, audit_chain
from dr_portal.checks import check_signing_key
from dr_portal.lib import paths, signing
from dr_portal.models import AuditEntry, SignedReport
from tests.factories import DrillRunFactory, IncidentFactory


def verify(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_report", *args, stdout=out)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


@pytest.fixture
def incident_pdf(viewer_client, tmp_path):
    """An incident PDF and its .sig, downloaded the way a person does."""
    incident = IncidentFactory(recent=True)
    response = viewer_client.get(reverse("incidents:pdf", args=[incident.identifier]))
    assert response.status_code == 200
    pdf = tmp_path / f"{incident.identifier}.pdf"
    pdf.write_bytes(response.content)
    sig = viewer_client.get(response["X-Report-Signature"])
    assert sig.status_code == 200
    assert sig["Content-Disposition"] == f'attachment; filename="{pdf.name}.sig"'
    (tmp_path / f"{pdf.name}.sig").write_bytes(sig.content)
    return incident, pdf


def test_incident_pdf_is_signed_and_verifies(incident_pdf, viewer_client):
    incident, pdf = incident_pdf
    report = SignedReport.objects.get(kind="incident", object_id=str(incident.pk))
    assert report.key_fingerprint == signing.fingerprint()
    # The PDF says what signs it.
    assert signing.fingerprint() in pdf_text(pdf.read_bytes()).replace("\n", "")
    code, out = verify(str(pdf))
    assert code == 0, out
    assert "OK: the signature is valid" in out and signing.fingerprint() in out
    assert AuditEntry.objects.filter(action="sign report pdf", detail__contains=report.pdf_sha256)
    # The incident's report page lists it with its .sig.
    page = viewer_client.get(reverse("incidents:report", args=[incident.identifier]))
    assert reverse("report_signature", args=[report.pk]) in page.content.decode()


def test_a_one_byte_change_fails(incident_pdf):
    _, pdf = incident_pdf
    data = bytearray(pdf.read_bytes())
    data[len(data) // 2] ^= 0x01
    pdf.write_bytes(bytes(data))
    code, out = verify(str(pdf))
    assert code == 1 and "FAILED" in out


def test_verifies_from_the_register_without_a_sig_file(incident_pdf):
    _, pdf = incident_pdf
    (pdf.parent / f"{pdf.name}.sig").unlink()
    code, out = verify(str(pdf))
    assert code == 0 and "register #" in out


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_verifies_it_without_the_portal(incident_pdf, viewer_client):
    _, pdf = incident_pdf
    key = pdf.parent / "signing-key.pem"
    key.write_bytes(viewer_client.get(reverse("signing_key")).content)
    command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin"]
    good = subprocess.run(
        [*command, "-in", str(pdf), "-sigfile", f"{pdf}.sig"], capture_output=True, text=True
    )
    assert good.returncode == 0, good.stdout + good.stderr
    changed = pdf.parent / "changed.pdf"
    changed.write_bytes(pdf.read_bytes() + b"\n")
    bad = subprocess.run(
        [*command, "-in", str(changed), "-sigfile", f"{pdf}.sig"], capture_output=True, text=True
    )
    assert bad.returncode != 0


def test_drill_pdf_is_signed(viewer_client, tmp_path):
    drill = DrillRunFactory()
    response = viewer_client.get(reverse("drills:pdf", args=[drill.pk]))
    assert response.status_code == 200
    report = SignedReport.objects.get(kind="drill", object_id=str(drill.pk))
    assert signing.verify(response.content, report.signature_bytes)
    assert signing.fingerprint() in pdf_text(response.content).replace("\n", "")


def test_compliance_pdf_is_signed(manager_client, tmp_path):
    response = manager_client.get(
        reverse("compliance_pdf") + "?date_from=2026-05-01&date_to=2026-05-31"
    )
    assert response.status_code == 200
    report = SignedReport.objects.get(kind="compliance")
    assert report.filename == "compliance-2026-05-01-2026-05-31.pdf"
    assert signing.verify(response.content, report.signature_bytes)
    text = pdf_text(response.content).replace("\n", "")
    assert signing.fingerprint() in text and "Audit chain head" in text
    page = manager_client.get(reverse("compliance") + "?date_from=2026-05-01&date_to=2026-05-31")
    assert reverse("report_signature", args=[report.pk]) in page.content.decode()


def test_compliance_command_writes_the_sig_beside_the_pdf(db, tmp_path):
    pdf = tmp_path / "q2.pdf"
    audit.record("something happened before the report")
    out = io.StringIO()
    call_command(
        "compliance_report",
        "--from",
        "2026-04-01",
        "--to",
        "2026-06-30",
        "--pdf",
        str(pdf),
        stdout=out,
    )
    assert f"{pdf}.sig" in out.getvalue()
    # The head as it stood when the report was made (signing it appended entries since).
    seq, entry_id, entry_hash = re.search(
        r"audit chain head #(\d+) \(entry id (\d+)\) ([0-9a-f]{64})", out.getvalue()
    ).groups()
    assert AuditEntry.objects.get(pk=entry_id).entry_hash == entry_hash
    assert int(seq) < audit_chain.head()["seq"]
    assert verify(str(pdf))[0] == 0


def test_key_from_the_environment(settings, db, tmp_path):
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    settings.DR_SIGNING_KEY = base64.b64encode(raw).decode()
    assert signing.fingerprint() == signing.fingerprint(key.public_key())
    settings.DR_SIGNING_KEY = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    assert signing.verify(b"report", signing.sign(b"report"), key.public_key())
    settings.DR_SIGNING_KEY = "not-a-key-secret-value"
    with pytest.raises(signing.SigningKeyError) as caught:
        signing.private_key()
    assert "not-a-key-secret-value" not in str(caught.value)
    (error,) = check_signing_key(None)
    assert error.id == "dr_portal.E003" and "not-a-key" not in error.msg


def test_generated_key_is_private_and_never_backed_up(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.DR_SIGNING_KEY = ""
    first = signing.fingerprint()
    key_file = tmp_path / signing.KEY_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    signing._load.cache_clear()
    assert signing.fingerprint() == first  # read back, not generated again
    assert "never leave the host" in paths.protected_problem(str(key_file))
