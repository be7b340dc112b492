"""open_source: the reader for a source spec (readers in sources.py and pg_parallel.py)."""

from .errors import SourceError
from .pg_parallel import PgDirectoryDumpStream
from .sources import PgDumpStream, PgGlobalsStream, SqliteStream, TarStream
from .specs import SourceSpec


def open_source(spec: SourceSpec, scratch_dir: str | None = None):
    if spec.kind == "postgresql":
        if not spec.config.get("database"):
            raise SourceError("postgresql source needs a database name")
        if (spec.config.get("parallel") or 1) != 1:
            return PgDirectoryDumpStream(spec.config, spec.password, scratch_dir)
        return PgDumpStream(spec.config, spec.password)
    if spec.kind == "pg_globals":
        return PgGlobalsStream(spec.config, spec.password)
    if spec.kind == "sqlite":
        return SqliteStream(spec.config, scratch_dir)
    if spec.kind == "files":
        return TarStream(spec.config)
    raise SourceError(f"unknown source kind {spec.kind!r}")
