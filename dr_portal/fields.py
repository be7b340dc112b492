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


class SecretEndpointMixin:
    """Stored secrets are bound to the endpoint they were given for.

    Saving with a changed endpoint (any of ENDPOINT_FIELDS) clears every secret that was
    not given anew in the same change, so a stored password is never sent to a host, port
    or bucket that someone else picked. `cleared_secrets` names what was cleared.
    """

    ENDPOINT_FIELDS: tuple[str, ...] = ()
    SECRET_FIELDS: tuple[str, ...] = ()
    # A secret bound to its own endpoint instead (a hook's signing key to the hook's URL):
    # secret -> the fields whose change clears it. Not named here: ENDPOINT_FIELDS.
    SECRET_ENDPOINTS: dict[str, tuple[str, ...]] = {}

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_endpoint = instance._endpoint()
        return instance

    @classmethod
    def _watched(cls) -> tuple[str, ...]:
        names = [*cls.ENDPOINT_FIELDS, *(n for f in cls.SECRET_ENDPOINTS.values() for n in f)]
        return tuple(dict.fromkeys(names))

    def _endpoint(self):
        return tuple(self.__dict__.get(self._meta.get_field(n).attname) for n in self._watched())

    def endpoint_changes(self) -> list[str]:
        loaded = getattr(self, "_loaded_endpoint", None)
        if loaded is None:
            return []
        return [
            n
            for n, old, new in zip(self._watched(), loaded, self._endpoint(), strict=True)
            if old != new
        ]

    def secrets_to_clear(self) -> list[str]:
        """Stored (not newly given) secrets that saving now would clear."""
        moved = set(self.endpoint_changes())
        if not moved:
            return []
        return [
            name
            for name in self.SECRET_FIELDS
            if moved & set(self.SECRET_ENDPOINTS.get(name, self.ENDPOINT_FIELDS))
            and isinstance(self.__dict__.get(name), Secret)
            and self.__dict__[name]
        ]

    def save(self, *args, **kwargs):
        self.cleared_secrets = self.secrets_to_clear()
        for name in self.cleared_secrets:
            setattr(self, name, "")
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and self.cleared_secrets:
            kwargs["update_fields"] = {*update_fields, *self.cleared_secrets}
        super().save(*args, **kwargs)
        self._loaded_endpoint = self._endpoint()
