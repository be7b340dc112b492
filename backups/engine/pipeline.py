"""run_backup: source -> compressor -> chunked AES-GCM -> SHA-256 -> every destination at once.

Threads overlap the work: a reader thread drains the source (pg_dump keeps running while we
compress), zstd compresses on its own worker thread (BackupOptions.threads), the calling
thread feeds it, encrypts and hashes (AESGCM and hashlib release the GIL on 1 MiB buffers),
and one writer thread per destination stores. All queues
are bounded, so memory stays bounded whatever the size; a slow destination slows the run,
a failing one is dropped while the others continue.
"""

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from dr_portal.lib.redact import redact

from .compress import default_level, make_chunked_compressor
from .crypto import CHUNK_SIZE, ChunkEncryptor, build_header
from .destinations import check_artifact_key, open_destination
from .errors import Cancelled, DestinationError, SourceError
from .manifest import build_manifest
from .opening import open_source
from .specs import BackupOptions, BackupResult, CopyResult, DestinationSpec, SourceSpec

log = logging.getLogger(__name__)

READ_SIZE = 1024 * 1024
RAW_QUEUE = 8  # blocks of READ_SIZE waiting for the compressor
COPY_QUEUE = 16  # stored chunks waiting for each destination
POLL = 0.2  # seconds between cancel checks while waiting
PROGRESS_EVERY = 0.5
UNENCRYPTED_BATCH = 1024 * 1024

_EOF = object()


def _now() -> datetime:
    return datetime.now(UTC)


class _Copy:
    """One destination's writer thread and its bounded queue."""

    def __init__(self, spec: DestinationSpec, writer):
        self.spec = spec
        self.writer = writer
        self.queue: queue.Queue = queue.Queue(maxsize=COPY_QUEUE)
        self.error = ""
        self.bytes = 0
        self.location = ""
        self.manifest_location = ""
        self.thread = threading.Thread(target=self._run, name=f"dest-{spec.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _EOF:
                return
            if self.error:
                continue  # keep draining so the producer never blocks on a dead copy
            try:
                self.writer.write(item)
                self.bytes += len(item)
            except Exception as exc:  # noqa: BLE001 - any failure ends this copy only
                self.fail(exc)

    def fail(self, exc: BaseException | str) -> None:
        if not self.error:
            text = (
                str(exc)
                if isinstance(exc, DestinationError | str)
                else f"{type(exc).__name__}: {exc}"
            )
            self.error = redact(text, list(self.spec.secrets.values()))
        try:
            self.writer.abort()
        except Exception:  # noqa: BLE001
            log.exception("aborting copy to %s failed", self.spec.name)

    def put(self, item, cancel: threading.Event | None) -> None:
        while not self.error:
            try:
                self.queue.put(item, timeout=POLL)
                return
            except queue.Full:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled") from None

    def close(self) -> None:
        """Send end-of-stream and wait for the writer thread to drain its queue."""
        while self.thread.is_alive():
            try:
                self.queue.put(_EOF, timeout=POLL)
                break
            except queue.Full:
                continue
        self.thread.join()

    def result(self) -> CopyResult:
        return CopyResult(
            destination=self.spec.name,
            ok=not self.error and bool(self.manifest_location),
            location=self.location if not self.error else "",
            manifest_location=self.manifest_location if not self.error else "",
            bytes_stored=self.bytes,
            error=self.error,
            storage_class=getattr(self.writer, "storage_class", "") or "",
            locked_until=getattr(self.writer, "locked_until", None) if not self.error else None,
        )


class _Reader:
    """Drains the source into a bounded queue from its own thread.

    A source with readinto() fills one of a fixed set of reused buffers (no allocation and
    no fresh pages per block); the consumer returns each with recycle() once it is used.
    """

    def __init__(self, stream):
        self.stream = stream
        self.queue: queue.Queue = queue.Queue(maxsize=RAW_QUEUE)
        self.free: queue.Queue = queue.Queue()
        if hasattr(stream, "readinto"):
            # every queued block, one being read and one being compressed
            for _ in range(RAW_QUEUE + 2):
                self.free.put(bytearray(READ_SIZE))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="source-reader", daemon=True)
        self.thread.start()

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=POLL)
                return
            except queue.Full:
                continue

    def _next(self):
        if not hasattr(self.stream, "readinto"):
            return self.stream.read(READ_SIZE)
        while not self.stop.is_set():
            try:
                buffer = self.free.get(timeout=POLL)
            except queue.Empty:
                continue
            return memoryview(buffer)[: self.stream.readinto(buffer)]
        return b""

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                block = self._next()
                self._put(block)
                if not block:
                    return
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            self._put(exc)

    def get(self, cancel: threading.Event | None, idle: Callable[[], None]):
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            try:
                return self.queue.get(timeout=POLL)
            except queue.Empty:
                idle()  # e.g. pg_dump waiting for a lock: progress still shows the run alive

    def recycle(self, block) -> None:
        """The consumer is done with `block`: its buffer may be filled again."""
        if isinstance(block, memoryview):
            buffer = block.obj
            block.release()
            self.free.put(buffer)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def _validate(options: BackupOptions, destinations: list[DestinationSpec]) -> str:
    try:
        check_artifact_key(options.artifact_key)
        default_level(options.compression, options.level)
    except ValueError as exc:
        return str(exc)
    if options.encrypt and not options.master_keys:
        return "encryption is on but no master key was given (DR_ENCRYPTION_KEYS is empty)"
    if not destinations:
        return "no destination configured"
    return ""


class _Progress:
    """Reports progress at most every PROGRESS_EVERY seconds; a failing hook never fails the run."""

    def __init__(self, progress: Callable[[str, int, int], None] | None, result: BackupResult):
        self.progress = progress
        self.result = result
        self.last = 0.0

    def __call__(self, phase: str, force: bool = False) -> None:
        if self.progress is None:
            return
        moment = time.monotonic()
        if force or moment - self.last >= PROGRESS_EVERY:
            self.last = moment
            try:
                self.progress(phase, self.result.bytes_read, self.result.bytes_stored)
            except Exception:  # noqa: BLE001 - a progress hook must not fail the backup
                log.exception("progress callback failed")


class _Sink:
    """Encrypts (or batches) compressed output, hashes it and hands it to every live copy."""

    def __init__(self, header, encrypt: bool, copies: list[_Copy], result, cancel):
        self.sha = hashlib.sha256()
        self.encryptor = ChunkEncryptor(header) if encrypt else None
        self.pending = bytearray()  # batches small compressor output when not encrypting
        self.copies = copies
        self.result = result
        self.cancel = cancel

    def store(self, chunk: bytes) -> None:
        self.sha.update(chunk)
        self.result.bytes_stored += len(chunk)
        live = [c for c in self.copies if not c.error]
        if not live:
            raise DestinationError("every destination failed")
        for copy in live:
            copy.put(chunk, self.cancel)

    def emit(self, data: bytes, final: bool = False) -> None:
        if self.encryptor is not None:
            for chunk in self.encryptor.update(data):
                self.store(chunk)
            if final:
                self.store(self.encryptor.finish())
            return
        if not self.pending and len(data) >= UNENCRYPTED_BATCH:
            self.store(bytes(data))  # a whole piece: one copy at most (none for bytes)
            return
        self.pending.extend(data)
        if len(self.pending) >= UNENCRYPTED_BATCH or (final and self.pending):
            self.store(bytes(self.pending))
            self.pending.clear()


def _error_text(exc: BaseException, secrets: list[str]) -> str:
    text = str(exc) if isinstance(exc, DestinationError) else f"{type(exc).__name__}: {exc}"
    return redact(text, secrets)


class _Run:
    """One backup: open the copies, stream the source into them, commit, write manifests."""

    def __init__(self, source, destinations, options, progress, cancel):
        self.source = source
        self.destinations = destinations
        self.options = options
        self.cancel = cancel
        self.result = BackupResult(status="failed", started=_now())
        self.report = _Progress(progress, self.result)
        self.level = default_level(options.compression, options.level)
        self.master = options.master_keys[0] if options.encrypt else None
        self.header = build_header(options.compression, self.master)
        self.copies: list[_Copy] = []
        self.failed_early: list[CopyResult] = []  # destinations that could not be opened
        self.stream = self.reader = None

    def execute(self) -> None:
        """Run every step; any fault is recorded on the result, never raised."""
        result = self.result
        try:
            self._open_copies()
            self._transfer()
            self._commit()
            self._write_manifests()
        except Cancelled:
            result.cancelled = True
            result.error = "cancelled by request; no copy was kept"
        except SourceError as exc:
            result.error = redact(str(exc), [self.source.password])
        except DestinationError as exc:
            details = [f"{c.destination}: {c.error}" for c in self.failed_early]
            details += [f"{c.spec.name}: {c.error}" for c in self.copies if c.error]
            result.error = f"{exc}: {'; '.join(details)}" if details else str(exc)
        except Exception as exc:  # noqa: BLE001 - recorded on the run, not swallowed
            log.exception("backup failed unexpectedly")
            result.error = redact(f"{type(exc).__name__}: {exc}", [self.source.password])
        finally:
            self._release()

    def _open_copies(self) -> None:
        self.report("opening destinations", force=True)
        for spec in self.destinations:
            try:
                writer = open_destination(spec).open_write(self.options.artifact_key)
                self.copies.append(_Copy(spec, writer))
            except Exception as exc:  # noqa: BLE001 - this destination only
                error = _error_text(exc, list(spec.secrets.values()))
                self.failed_early.append(CopyResult(spec.name, False, error=error))
        if not self.copies:
            raise DestinationError("no destination could be opened")

    def _transfer(self) -> None:
        """Snapshot the source and stream it through compressor and sink (the hot loop)."""
        result, report, cancel = self.result, self.report, self.cancel
        report("snapshot", force=True)
        self.stream = stream = open_source(self.source, self.options.scratch_dir)
        result.data_taken_at = stream.data_taken_at
        self.reader = reader = _Reader(stream)
        compressor = make_chunked_compressor(
            self.options.compression, self.level, self.options.threads, CHUNK_SIZE
        )
        sink = _Sink(self.header, self.master is not None, self.copies, result, cancel)

        def idle() -> None:
            report("streaming")

        sink.store(self.header.raw)
        while True:
            block = reader.get(cancel, idle=idle)
            if isinstance(block, Exception):
                raise SourceError(f"reading the source failed: {block}")
            if not block:
                break
            result.bytes_read += len(block)
            for piece in compressor.compress(block):
                sink.emit(piece)
            reader.recycle(block)  # compressor and sink have copied what they keep
            report("streaming")
        # The source must have completed (pg_dump exit 0) before any copy is committed.
        stream.finish()
        result.warnings = list(getattr(stream, "warnings", []))
        for piece in compressor.flush():
            sink.emit(piece)
        sink.emit(b"", final=True)
        result.sha256 = sink.sha.hexdigest()

    def _commit(self) -> None:
        self.report("committing", force=True)
        for copy in self.copies:
            copy.close()
        for copy in self.copies:
            if copy.error:
                continue
            try:
                copy.location = copy.writer.commit()
            except Exception as exc:  # noqa: BLE001
                copy.fail(exc)

    def _write_manifests(self) -> None:
        result = self.result
        result.finished = _now()
        result.manifest = build_manifest(
            extra=self.options.manifest_extra,
            source_kind=self.source.kind,
            artifact_key=self.options.artifact_key,
            compression=self.options.compression,
            level=self.level,
            key_id=self.header.key_id,
            bytes_read=result.bytes_read,
            bytes_stored=result.bytes_stored,
            sha256=result.sha256,
            started=result.started,
            finished=result.finished,
            data_taken_at=result.data_taken_at,
        )
        # what the source says about its own format (a parallel dump: a tar of a directory)
        result.manifest.update(getattr(self.stream, "manifest_fields", {}))
        if result.warnings:
            result.manifest["not_backed_up"] = result.warnings
        self.report("writing manifests", force=True)
        for copy in self.copies:
            if copy.error:
                continue
            try:
                copy.manifest_location = copy.writer.write_manifest(
                    dict(
                        result.manifest,
                        destination=copy.spec.name,
                        location=copy.location,
                        storage_class=getattr(copy.writer, "storage_class", "") or "",
                        # how this copy was uploaded (S3: upload_checksums, part_size)
                        **getattr(copy.writer, "manifest_fields", {}),
                    )
                )
            except Exception as exc:  # noqa: BLE001 - the artifact without manifest is removed
                copy.fail(exc)

    def _release(self) -> None:
        """Stop the source and the writers; on error no copy is kept."""
        if self.reader is not None:
            self.reader.stop.set()
        if self.stream is not None:
            self.stream.close()  # kills pg_dump's process group, removes temp files
        if self.reader is not None:
            self.reader.close()
        error = self.result.error
        for copy in self.copies:
            discard = bool(error) and not copy.error
            if discard:
                copy.error = "not kept: " + error  # the writer thread now discards
            copy.close()
            if discard:
                copy.fail(copy.error)  # error already set: only aborts the writer

    def outcome(self) -> BackupResult:
        """The copies in the caller's order and the run's status from them."""
        result = self.result
        copy_results = self.failed_early + [c.result() for c in self.copies]
        order = {spec.name: i for i, spec in enumerate(self.destinations)}
        result.copies = sorted(copy_results, key=lambda c: order.get(c.destination, 0))
        result.finished = result.finished or _now()
        good = [c for c in result.copies if c.ok]
        if result.error and not good:
            result.status = "failed"
        elif len(good) == len(result.copies):
            result.status = "succeeded"
        elif good:
            result.status = "partial"
            result.error = "; ".join(
                f"{c.destination}: {c.error}" for c in result.copies if not c.ok
            )
        else:
            result.status = "failed"
            result.error = "every destination failed: " + "; ".join(
                f"{c.destination}: {c.error}" for c in result.copies
            )
        self.report("done", force=True)
        return result


def run_backup(
    source: SourceSpec,
    destinations: list[DestinationSpec],
    options: BackupOptions,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> BackupResult:
    """Back up one source to every destination; never raises for source/destination faults."""
    problem = _validate(options, destinations)
    if problem:
        now = _now()
        return BackupResult(status="failed", started=now, error=problem, finished=now)
    run = _Run(source, destinations, options, progress, cancel)
    run.execute()
    return run.outcome()
