"""What a browser would post for the first form of a page that has a given field."""

from html.parser import HTMLParser


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({})
        elif tag == "option" and self._select and "selected" in a:
            self.forms[-1][self._select] = a.get("value", "")
        elif not self.forms or "name" not in a or "disabled" in a:
            return
        elif tag == "input":
            self._input(a)
        elif tag == "select":
            self._select = a["name"]
            if "multiple" not in a:  # a browser posts nothing for a multiple with none chosen
                self.forms[-1].setdefault(self._select, "")  # multiple: the last selected one
        elif tag == "textarea":
            self._textarea = a["name"]
            self.forms[-1][self._textarea] = ""

    def _input(self, a):
        kind = a.get("type", "text")
        if kind in ("submit", "button", "file", "password"):
            return
        if kind in ("checkbox", "radio") and "checked" not in a:
            return
        self.forms[-1][a["name"]] = a.get("value", "on" if kind == "checkbox" else "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea and self.forms:
            self.forms[-1][self._textarea] += (
                data.lstrip("\n") if not self.forms[-1][self._textarea] else data
            )


def form_data(html: str, field: str) -> dict:
    """The values of the first form on the page that posts `field`."""
    parser = _Forms()
    parser.feed(html)
    for form in parser.forms:
        if field in form:
            return form
    raise AssertionError(f"no form with a {field!r} field")
