"""Backup and restore of the embedded default: everything under DATA_DIR that is not a cache.

An archive (tar.gz) holds
- ``db.sqlite3``: the database, copied with SQLite's online backup API (a consistent snapshot
  even while another process writes);
- ``edge/``: the embedded vector store's folder (qdrant-edge-py: segments and write-ahead log);
- ``uploads/``: the originals;
- ``manifest.json`` (last): versions, counts and the sha256 of every other member.

The vector store's folder is copied only by the process that holds it: the engine writes segments
and its log in place, so a copy taken beside a writer may tear. Backup therefore opens the store
itself (its lock also keeps the app, the worker and `ingest --sync` out for the minute it takes),
flushes it and copies it while holding it; when another process (the serving app) holds it,
backup refuses and says which process to stop. The database snapshot is taken before the uploads
are copied: without the store nothing deletes an original, so every file the snapshot names is in
the archive.

Restore unpacks into a staging folder inside an empty DATA_DIR, checks every member against the
manifest's sha256 and the counts against the restored database and store, and only then moves
the three into place: a refused or failed restore leaves DATA_DIR as it was.

Production (PostgreSQL, a Qdrant server, a bucket) is refused: the engines' own tools do that job
(README, "Backup and restore").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from django.conf import settings

from core.announcement import announced

FORMAT = 1
KIND = "rag-assistant embedded backup"
MANIFEST = "manifest.json"
DATABASE = "db.sqlite3"
STORE = "edge"
UPLOADS = "uploads"
MEMBERS = (DATABASE, STORE, UPLOADS)
# Under DATA_DIR but not part of a backup: caches and run-time state, rebuilt by the app
# (the offline model's download, collected static files, the folder broker's queue, the
# running app's announcement). A restore ignores them when it checks DATA_DIR is empty.
NOT_BACKED_UP = ("models", "static", "broker", "run")
PACKAGES = ("Django", "qdrant-edge-py", "sentence-transformers", "celery")
BLOCK = 1024 * 1024
PAGE = 4096  # restore leaves runs of zeros this long as holes
COMPRESS_LEVEL = 6  # tarfile's default is 9: much slower on PDFs for a few percent


class BackupRefused(Exception):
    """Nothing was written (backup) or changed (restore); the message says why and what to do."""


@dataclass(frozen=True)
class Counts:
    documents: int
    chunks: int  # the ready documents' passages, as the database records them
    points: int  # the vector store's points
    audit_records: int
    users: int
    originals: int  # files under uploads/


@dataclass(frozen=True)
class BackupReport:
    path: Path
    size: int
    counts: Counts
    seconds: float


@dataclass(frozen=True)
class RestoreReport:
    data_dir: Path
    counts: Counts
    seconds: float
    warnings: list[str] = field(default_factory=list)


# --- backup -------------------------------------------------------------------------------------


def backup_create(*, path: Path) -> BackupReport:
    """Write the archive of this DATA_DIR to ``path`` (which must not exist)."""
    started = time.monotonic()
    embedded_require("backup")
    path = Path(path).resolve()
    if path.exists():
        raise BackupRefused(f"{path} exists: choose a new file name (a backup never overwrites)")
    if not path.parent.is_dir():
        raise BackupRefused(f"{path.parent} is not a folder")
    data_dir = Path(settings.DATA_DIR)
    for name in (STORE, UPLOADS):
        if path.is_relative_to(data_dir / name):
            raise BackupRefused(f"{path} lies inside {data_dir / name}, which is backed up")

    store = _store_claim()
    try:
        with store._lock:  # noqa: SLF001 - nothing writes while the folder is read
            store.shard.flush()  # the segments as of now; the write-ahead log has the rest
            points = store.count()
            partial = path.with_name(f".{path.name}.partial")
            try:
                with tempfile.TemporaryDirectory(prefix="backup-", dir=path.parent) as scratch:
                    snapshot = Path(scratch) / DATABASE
                    _sqlite_snapshot(_database_path(), snapshot)
                    counts = _counts(snapshot, points=points, uploads=_uploads_dir())
                    _write_archive(
                        partial,
                        [(DATABASE, snapshot)]
                        + _tree(STORE, store.path)
                        + _tree(UPLOADS, _uploads_dir()),
                        manifest=lambda files: _manifest(counts, files),
                    )
                partial.replace(path)
            finally:
                partial.unlink(missing_ok=True)
    finally:
        store.close()
    return BackupReport(
        path=path, size=path.stat().st_size, counts=counts, seconds=time.monotonic() - started
    )


def embedded_require(action: str) -> None:
    """Refuse a configuration other than the embedded default, naming the tools that do it."""
    other = []
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        other.append(
            f"the database is {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]} "
            "(DATABASE_URL): use pg_dump / pg_restore"
        )
    if getattr(settings, "QDRANT_URL", "") or not settings.RAG_VECTOR_STORE["BACKEND"].endswith(
        ".EdgeStore"
    ):
        other.append("the vector store is a Qdrant server (QDRANT_URL): use Qdrant snapshots")
    storage = settings.STORAGES["default"]["BACKEND"]
    if not storage.endswith("FileSystemStorage"):
        other.append(
            "originals are in object storage (STORAGE_BACKEND): use the bucket's versioning"
        )
    if other:
        raise BackupRefused(
            f"manage.py {action} handles the embedded default only (SQLite, the embedded vector "
            "store and originals under DATA_DIR), but " + "; ".join(other) + ". In production "
            "take a pg_dump first, then a Qdrant snapshot, then rely on bucket versioning "
            "(README, 'Backup and restore')."
        )


def _store_claim():
    """Open the embedded store in this process, or refuse: its folder is copied by its holder."""
    from core.components import get_store
    from rag.store import EdgeStore, StoreLocked

    store = get_store()
    if not isinstance(store, EdgeStore):
        raise BackupRefused("the vector store is not the embedded one (RAG_VECTOR_STORE)")
    try:
        store.ensure_collection()
    except StoreLocked as exc:
        app = announced()
        holder = (
            f"the app serving {app.url} (pid {app.pid})"
            if app
            else "another process (an `ingest --sync`, a shell or a worker)"
        )
        raise BackupRefused(
            f"stop the app first: the embedded vector store {store.path} is open in {holder}. "
            "Only the process holding it can copy it consistently (the engine writes its "
            "segments and log in place), so stop that process, run backup, then start it again."
        ) from exc
    return store


def _database_path() -> Path:
    return Path(settings.DATABASES["default"]["NAME"])


def _uploads_dir() -> Path:
    return Path(settings.MEDIA_ROOT)


def _sqlite_snapshot(source: Path, target: Path) -> None:
    """A consistent copy through SQLite's online backup API (one step: one read transaction)."""
    if not source.exists():
        raise BackupRefused(f"no database at {source}: nothing to back up (run migrate first?)")
    with closing(sqlite3.connect(source, timeout=30)) as src:
        with closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it


def _counts(database: Path, *, points: int, uploads: Path) -> Counts:
    from django.apps import apps
    from django.contrib.auth import get_user_model

    # through the app registry: core never imports the apps (tests/core/test_wiring.py)
    AuditRecord = apps.get_model("audit", "AuditRecord")  # noqa: N806
    Document = apps.get_model("ingest", "Document")  # noqa: N806

    documents = Document._meta.db_table
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:

        def one(sql: str) -> int:
            return int(db.execute(sql).fetchone()[0] or 0)

        counts = Counts(
            documents=one(f'SELECT COUNT(*) FROM "{documents}"'),
            chunks=one(
                f'SELECT SUM(chunk_count) FROM "{documents}" '
                f"WHERE status = '{Document.Status.READY}'"
            ),
            points=points,
            audit_records=one(f'SELECT COUNT(*) FROM "{AuditRecord._meta.db_table}"'),
            users=one(f'SELECT COUNT(*) FROM "{get_user_model()._meta.db_table}"'),
            originals=sum(1 for _ in _files(uploads)),
        )
    return counts


def _files(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        for root, dirs, names in os.walk(folder):
            dirs.sort()
            for name in sorted(names):
                yield Path(root) / name


def _tree(prefix: str, folder: Path) -> list[tuple[str, Path]]:
    return [(f"{prefix}/{file.relative_to(folder).as_posix()}", file) for file in _files(folder)]


class _Hashing:
    """A file read through, hashed on the way (tarfile reads exactly the member's size)."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.sha256.update(data)
        return data


def _write_archive(target: Path, files: list[tuple[str, Path]], *, manifest) -> dict:
    recorded: dict[str, dict] = {}
    with tarfile.open(target, "w:gz", compresslevel=COMPRESS_LEVEL) as archive:
        for name, file in files:
            info = archive.gettarinfo(str(file), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(file, "rb") as handle:
                reader = _Hashing(handle)
                archive.addfile(info, reader)
            recorded[name] = {"size": info.size, "sha256": reader.sha256.hexdigest()}
        body = json.dumps(manifest(recorded), indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(body), int(time.time()), 0o600
        archive.addfile(info, _Bytes(body))
    return recorded


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.at + size
        chunk, self.at = self.data[self.at : end], min(end, len(self.data))
        return chunk


def _manifest(counts: Counts, files: dict) -> dict:
    return {
        "format": FORMAT,
        "kind": KIND,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "app": {"version": _version("rag-assistant"), "git_commit": _git_commit()},
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "embedding": _embedding(),
        "counts": asdict(counts),
        "files": files,
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        if package == "rag-assistant":  # not installed: the source tree's own
            import tomllib

            try:
                with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as handle:
                    return tomllib.load(handle)["project"]["version"]
            except (OSError, KeyError, ValueError):
                return None
        return None


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _embedding() -> dict:
    """The model whose vectors the store holds: a restore under another model searches with
    vectors that do not match."""
    from core.components import get_embedder

    embedder = get_embedder()
    return {
        "model": getattr(embedder, "name", type(embedder).__name__),
        "dimension": embedder.dimension,
    }


# --- restore ------------------------------------------------------------------------------------


def backup_restore(*, path: Path) -> RestoreReport:
    """Restore the archive at ``path`` into this (empty) DATA_DIR."""
    started = time.monotonic()
    embedded_require("restore")
    path = Path(path)
    if not path.is_file():
        raise BackupRefused(f"{path}: no such archive")
    data_dir = Path(settings.DATA_DIR)
    targets = {
        DATABASE: _database_path(),
        STORE: Path(settings.RAG_VECTOR_STORE["OPTIONS"]["path"]),
        UPLOADS: _uploads_dir(),
    }
    _require_empty(data_dir)
    staging = Path(tempfile.mkdtemp(prefix=".restoring-", dir=data_dir))
    try:
        hashes = _unpack(path, staging)
        manifest = _manifest_check(staging, hashes)
        counts = _restored_counts(staging)
        try:
            expected = Counts(**manifest["counts"])
        except (KeyError, TypeError) as exc:
            raise BackupRefused(f"the manifest's counts are not readable: {exc}") from exc
        if counts != expected:
            raise BackupRefused(
                f"the restored data does not match the manifest: expected {asdict(expected)}, "
                f"found {asdict(counts)}"
            )
        _require_empty(data_dir, ignore=staging)  # still empty: nobody started meanwhile
        for target in targets.values():  # (also where settings put one outside DATA_DIR)
            if target.is_file() or any(_files(target)):
                raise BackupRefused(f"{target} is not empty: nothing was changed")
        for name, target in targets.items():
            source = staging / name
            if not source.exists():
                continue  # an archive of a DATA_DIR without uploads yet
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():  # empty folders only (checked above)
                shutil.rmtree(target)
            os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreReport(
        data_dir=data_dir,
        counts=counts,
        seconds=time.monotonic() - started,
        warnings=_version_warnings(manifest),
    )


def _require_empty(data_dir: Path, *, ignore: Path | None = None) -> None:
    found = [
        file.relative_to(data_dir).as_posix()
        for file in _files(data_dir)
        if file.relative_to(data_dir).parts[0] not in NOT_BACKED_UP
        and (ignore is None or not file.is_relative_to(ignore))
    ]
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise BackupRefused(
            f"DATA_DIR {data_dir} is not empty ({shown}): restore only into an empty DATA_DIR "
            "(set DATA_DIR to a new folder, or move this one aside); nothing was changed"
        )


def _unpack(archive_path: Path, staging: Path) -> dict[str, str]:
    """Unpack into ``staging``, hashing each file on the way; runs of zeros stay holes (the
    store's preallocated files are mostly empty). Only plain files under the known names."""
    hashes: dict[str, str] = {}
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            for member in archive:
                name = member.name
                parts = Path(name).parts
                if (
                    not member.isfile()
                    or Path(name).is_absolute()
                    or ".." in parts
                    or not parts
                    or (parts[0] not in MEMBERS and name != MANIFEST)
                    or name in hashes
                ):
                    raise BackupRefused(f"unexpected member {name!r} in the archive: refused")
                target = staging / name
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                source = archive.extractfile(member)
                with open(target, "wb") as out:
                    while block := source.read(BLOCK):
                        digest.update(block)
                        _write_sparse(out, block)
                    out.truncate(member.size)
                target.chmod(0o600)
                hashes[name] = digest.hexdigest()
            while archive.fileobj.read(BLOCK):  # to the end: gzip checks its CRC and length
                pass
    except (tarfile.TarError, zlib.error, OSError, EOFError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # a real I/O error (disk full...), not a damaged archive
        raise BackupRefused(f"the archive is damaged or not a backup: {exc}") from exc
    return hashes


def _write_sparse(out, block: bytes) -> None:
    """Write ``block``, leaving a hole for each page of zeros."""
    if block.count(0) == len(block):
        out.seek(len(block), os.SEEK_CUR)
        return
    for start in range(0, len(block), PAGE):
        page = block[start : start + PAGE]
        if page.count(0) == len(page):
            out.seek(len(page), os.SEEK_CUR)
        else:
            out.write(page)


def _manifest_check(staging: Path, hashes: dict[str, str]) -> dict:
    try:
        manifest = json.loads((staging / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupRefused(f"the archive has no readable {MANIFEST}: {exc}") from exc
    if manifest.get("kind") != KIND or manifest.get("format") != FORMAT:
        raise BackupRefused(
            f"not a backup of this app (kind {manifest.get('kind')!r}, format "
            f"{manifest.get('format')!r}; this version reads format {FORMAT})"
        )
    files = manifest.get("files") or {}
    unpacked = {name: digest for name, digest in hashes.items() if name != MANIFEST}
    if set(files) != set(unpacked):
        missing, extra = sorted(set(files) - set(unpacked)), sorted(set(unpacked) - set(files))
        raise BackupRefused(
            f"the archive does not match its manifest (missing {missing[:5]}, unlisted "
            f"{extra[:5]}): refused"
        )
    for name, digest in sorted(unpacked.items()):
        if files[name].get("sha256") != digest:
            raise BackupRefused(f"{name} does not match its sha256 in the manifest: refused")
    return manifest


def _restored_counts(staging: Path) -> Counts:
    from rag.store import EdgeStore

    points = 0
    if (staging / STORE).exists():
        store = EdgeStore(path=str(staging / STORE), dimension=_embedding()["dimension"])
        try:
            points = store.count()
        finally:
            store.close()
    counts = _counts(staging / DATABASE, points=points, uploads=staging / UPLOADS)
    for suffix in ("-wal", "-shm", "-journal"):
        (staging / f"{DATABASE}{suffix}").unlink(missing_ok=True)
    return counts


def _version_warnings(manifest: dict) -> list[str]:
    warnings = []
    for name, version in (manifest.get("packages") or {}).items():
        here = _version(name)
        if version and here and version != here:
            warnings.append(f"the archive was written with {name} {version}, this is {here}")
    here = _embedding()
    if manifest.get("embedding") and manifest["embedding"] != here:
        warnings.append(
            f"the archive's passages were embedded with {manifest['embedding']}, this app uses "
            f"{here}: re-index the documents (or configure the same model) before searching"
        )
    if warnings:
        warnings.append("run `manage.py migrate` before serving if this code is newer")
    return warnings
