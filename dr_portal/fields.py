"""A model field for secrets at rest: sealed with the key ring, never shown back."""

from django.db import models

from dr_portal.lib import keyring


class Secret:
    """A sealed secret loaded from the database. str() never reveals it."""

    __slots__ = ("token",)

    def __init__(self, token: str):
        self.token = token

    def reveal(self) -> str:
        """The plaintext; raises keyring.KeyRingError with a clear message on a wrong key."""
        return keyring.unseal(self.token)

    def __bool__(self):
        return bool(self.token)

    def __str__(self):
        return "••••••" if self.token else ""

    __repr__ = __str__

    def __eq__(self, other):
        return isinstance(other, Secret) and other.token == self.token

    def __hash__(self):
        return hash(self.token)


class EncryptedTextField(models.TextField):
    """Stores a Fernet token; assigning a str seals it, loading gives a Secret.

    To write an already sealed token (rotation, copies), assign Secret(token): a plain
    str is always treated as plaintext and sealed.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        return Secret(value or "")

    def to_python(self, value):
        if isinstance(value, Secret) or value is None:
            return value
        return value  # a plaintext assigned from a form; sealed in get_prep_value

    def get_prep_value(self, value):
        if value is None or value == "":
            return ""
        if isinstance(value, Secret):
            return value.token
        return keyring.seal(str(value))

    def value_to_string(self, obj):
        # Fixtures and serializers never carry the plaintext.
        return ""
