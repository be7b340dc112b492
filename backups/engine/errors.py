"""Errors the engine raises; their messages are meant for operators and never hold secrets."""


class EngineError(Exception):
    """Base class for every engine error."""


class SourceError(EngineError):
    """The source could not be read completely (dump failed, file missing, database gone)."""


class DestinationError(EngineError):
    """A destination could not be reached, written, read or cleaned up."""


class StoreOperationError(DestinationError):
    """A store refused or did not answer one S3 operation; names it and the store's code."""

    def __init__(self, message: str, operation: str, code: str):
        super().__init__(message)
        self.operation, self.code = operation, code


class DeletionRefused(DestinationError):
    """The destination is configured so that the portal does not delete there (a key without
    s3:DeleteObject and no delete credential; an append-only directory)."""


class ArtifactError(EngineError):
    """A stored artifact failed verification or cannot be decoded; the message names the cause."""


class Cancelled(EngineError):
    """The caller set the cancel event."""


class PgBackRestError(EngineError):
    """pgBackRest failed or is not set up; the message names what is missing, never a secret."""
