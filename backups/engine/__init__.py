"""The backup engine: plain Python, no Django. Tasks build specs from models and call it.

See FORMAT.md for the artifact format and the no-portal restore command.
"""

from .crypto import FORMAT_VERSION
from .destinations import ARTIFACT_SUFFIX, MANIFEST_SUFFIX, open_destination
from .errors import (
    ArtifactError,
    Cancelled,
    DeletionRefused,
    DestinationError,
    EngineError,
    SourceError,
)
from .manifest import tool_versions
from .pipeline import run_backup
from .specs import (
    COMPRESSIONS,
    DESTINATION_KINDS,
    SOURCE_KINDS,
    STORAGE_CLASSES,
    BackupOptions,
    BackupResult,
    CopyResult,
    DestinationSpec,
    SourceSpec,
)
from .unpacking import unpack_artifact

__all__ = [
    "ARTIFACT_SUFFIX",
    "COMPRESSIONS",
    "DESTINATION_KINDS",
    "FORMAT_VERSION",
    "MANIFEST_SUFFIX",
    "SOURCE_KINDS",
    "STORAGE_CLASSES",
    "ArtifactError",
    "BackupOptions",
    "BackupResult",
    "Cancelled",
    "CopyResult",
    "DeletionRefused",
    "DestinationError",
    "DestinationSpec",
    "EngineError",
    "SourceError",
    "SourceSpec",
    "open_destination",
    "run_backup",
    "tool_versions",
    "unpack_artifact",
]
