"""Contacts: CSV import (all or nothing, every bad line reported), export, on-call slots, the card."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.template import Context, Template
from django.urls import reverse

from incidents.contacts_csv import export_csv, import_csv
from incidents.models import Contact
from tests.factories import ContactFactory

GOOD = (
    "role,name,phone,email,on_call,notes\n"
    "On-Call,Alex Rivera,+44 1,alex@example.com,primary,week A\n"
    "On-Call,Jordan Lee,+44 2,jordan@example.com,secondary,\n"
    "DBA,Priya N,+44 3,dba@example.com,,postgres\n"
)


def _upload(client, text, name="contacts.csv"):
    return client.post(
        reverse("incidents:contacts_import"),
        {"file": SimpleUploadedFile(name, text.encode(), content_type="text/csv")},
    )


def test_manager_imports_contacts(manager_client):
    response = _upload(manager_client, GOOD)
    assert response.status_code == 302
    assert Contact.objects.count() == 3
    alex = Contact.objects.get(name="Alex Rivera")
    assert (alex.role, alex.on_call, alex.email, alex.notes) == (
        "On-Call",
        "primary",
        "alex@example.com",
        "week A",
    )


def test_bad_rows_import_nothing_and_each_is_reported_by_line(manager_client):
    ContactFactory(role="Manager", name="Existing", email="m@example.com")
    text = (
        "role,name,phone,email,on_call,notes\n"
        "On-Call,Alex Rivera,+44 1,alex@example.com,primary,\n"  # line 2 fine
        ",Nameless Role,,x@example.com,,\n"  # line 3: empty role
        "DBA,Priya,,not-an-email,,\n"  # line 4: bad email
        "DBA,Sam,,sam@example.com,tertiary,\n"  # line 5: bad on_call
        "On-Call,Alex Rivera,,a2@example.com,,\n"  # line 6: duplicate of line 2
        "On-Call,Jo,,jo@example.com,primary,\n"  # line 7: second primary
    )
    response = _upload(manager_client, text)
    assert response.status_code == 400
    body = response.content.decode()
    assert "Nothing was imported" in body
    for expected in [
        "Line 3: role is empty.",
        "Line 4: email &#x27;not-an-email&#x27; is not an email address.",
        "Line 5: on_call must be empty, primary or secondary, not &#x27;tertiary&#x27;.",
        "Line 6: Alex Rivera as On-Call is already on line 2.",
        "Line 7: On-Call primary on-call is already given on line 2.",
    ]:
        assert expected in body
    assert list(Contact.objects.values_list("name", flat=True)) == ["Existing"]


def test_line_numbers_count_quoted_multiline_cells():
    text = 'role,name,notes\nDBA,Ann,"two\nlines"\nDBA,,x\n'
    result = import_csv(text.encode())
    assert result.errors == ["Line 4: name is empty."]


def test_bad_header_and_encoding_are_reported():
    assert (
        import_csv(b"rolle,name\nx,y\n")
        .errors[0]
        .startswith("Line 1 (header): missing column(s) role")
    )
    assert "not UTF-8" in import_csv("role,name\nDBA,J\xf6rg\n".encode("latin-1")).errors[0]
    assert "no contacts" in import_csv(b"role,name\n").errors[0]


def test_import_updates_by_role_and_name_and_moves_on_call_slots(db):
    old = ContactFactory(role="On-Call", name="Old Pager", on_call="primary")
    ContactFactory(role="On-Call", name="Alex Rivera", phone="0", on_call="secondary")
    result = import_csv(
        b"role,name,phone,on_call\nOn-Call,Alex Rivera,+44 9,primary\nOn-Call,Old Pager,,secondary\n"
    )
    assert result.ok, result.errors
    assert (result.created, result.updated) == (0, 2)
    assert Contact.objects.get(name="Alex Rivera").on_call == "primary"  # a swap within the file
    old.refresh_from_db()
    assert old.on_call == "secondary"
    result = import_csv(b"role,name,on_call\nOn-Call,New Person,primary\n")
    assert result.moved_slots == ["On-Call primary on-call: Alex Rivera → New Person"]
    assert Contact.objects.get(name="Alex Rivera").on_call == ""


def test_export_round_trips_and_quotes_formulas(db):
    ContactFactory(role="DBA", name='=HYPERLINK("x")', email="d@example.com", on_call="primary")
    text = export_csv(Contact.objects.all())
    assert text.splitlines()[0] == "role,name,phone,email,on_call,notes"
    assert "'=HYPERLINK" in text
    Contact.objects.all().delete()
    assert import_csv(text.encode()).ok
    assert Contact.objects.get().name == '=HYPERLINK("x")'


def test_export_download_never_contains_webhooks(viewer_client, db):
    ContactFactory(role="DBA", name="Ann", webhook_url="https://hooks.example.com/s3cr3t")
    response = viewer_client.get(reverse("incidents:contacts_export"))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "s3cr3t" not in response.content.decode()
    assert "Ann" in response.content.decode()


def test_contact_form_refuses_second_primary_in_words(manager_client):
    ContactFactory(role="DBA", name="Ann", on_call="primary")
    response = manager_client.post(
        reverse("incidents:contact_new"), {"role": "DBA", "name": "Bob", "on_call": "primary"}
    )
    assert "Ann is already primary on-call for DBA." in response.content.decode()
    assert Contact.objects.count() == 1


def test_contact_webhook_is_sealed_and_never_shown(manager_client):
    manager_client.post(
        reverse("incidents:contact_new"),
        {"role": "DBA", "name": "Ann", "webhook_url": "https://hooks.example.com/s3cr3t"},
    )
    contact = Contact.objects.get()
    assert contact.webhook_url.reveal() == "https://hooks.example.com/s3cr3t"
    for url in (
        reverse("incidents:contacts"),
        reverse("incidents:contact_edit", args=[contact.pk]),
    ):
        assert "s3cr3t" not in manager_client.get(url).content.decode()
    # Saving without a new URL keeps the old one.
    manager_client.post(
        reverse("incidents:contact_edit", args=[contact.pk]), {"role": "DBA", "name": "Ann B"}
    )
    contact.refresh_from_db()
    assert contact.webhook_url.reveal() == "https://hooks.example.com/s3cr3t"


def test_contacts_card_for_drill_and_runbook_pages(db):
    ContactFactory(role="Manager", name="Morgan <b>Blake</b>", phone="+44 5")
    ContactFactory(role="DBA", name="Priya", on_call="primary", email="dba@example.com")
    html = Template("{% load incidents_tags %}{% key_contacts %}").render(Context({}))
    assert html.index("Priya") < html.index("Morgan")  # the seed order: DBA before Manager
    assert "Morgan &lt;b&gt;Blake&lt;/b&gt;" in html
    only = Template('{% load incidents_tags %}{% key_contacts roles="manager" %}').render(
        Context({})
    )
    assert "Morgan" in only and "Priya" not in only


def test_include_fragment_renders_without_the_tag(db):
    html = Template('{% include "incidents/_contacts.html" with contacts=contacts %}').render(
        Context({"contacts": [Contact(role="DBA", name="Zed")]})
    )
    assert "Zed" in html
