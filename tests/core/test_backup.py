"""`manage.py backup` / `manage.py restore` on the embedded default, as an admin runs them: a
DATA_DIR with ingested documents and answers is archived, restored into a new empty DATA_DIR, and
the restored app gives the same audit chain, the same search results and the same originals."""

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.docs import make_pdf
from tests.live import Server, answer_offline, embedded_env, manage

pytestmark = pytest.mark.slow

QUERIES = ["assembly point", "economy class flights", "laptop disk encryption"]
DOCUMENTS = {
    "safety.md": b"# Safety\n\nThe assembly point is the north car park.\n\n"
    b"Fire drills happen every March, led by the floor wardens.\n",
    "travel.txt": b"Travel policy\nEconomy class is required for flights shorter than six hours.\n",
    "handbook.pdf": make_pdf(
        [
            "Employee handbook\nWelcome to the company.",
            "Security policy\nLaptops must use full disk encryption and a screen lock.",
        ]
    ),
}


def searches(env, folder: Path) -> dict[str, list[tuple]]:
    """Each query's results (rank, chunk, document, page), the model loaded once."""
    batch = folder / "queries.jsonl"
    batch.write_text("".join(json.dumps({"id": q, "query": q}) + "\n" for q in QUERIES))
    out = manage(env, "search", "--batch", str(batch), "--json", "-k", "5").stdout
    results = {}
    for row in map(json.loads, out.splitlines()):
        found = row["results"]
        results[row["id"]] = [
            (r["rank"], r["chunk_id"], r["document_id"], r["page"]) for r in found
        ]
    assert set(results) == set(QUERIES) and all(results.values()), results
    return results


def data_files(data_dir: Path) -> list[str]:
    """What a restore must leave alone: every file but the caches the app makes at start-up."""
    return sorted(
        path.relative_to(data_dir).as_posix()
        for path in data_dir.rglob("*")
        if path.is_file() and path.relative_to(data_dir).parts[0] not in ("broker", "run")
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("backup")
    env = embedded_env(root / "data")
    manage(env, "migrate", "--noinput")
    manage(env, "ensure_admin")
    docs = root / "docs"
    docs.mkdir()
    for name, content in DOCUMENTS.items():
        (docs / name).write_bytes(content)
    lines = manage(env, "ingest", str(docs), "--sync", "--json").stdout.splitlines()
    ingested = {row["name"]: row for row in map(json.loads, lines)}
    assert {row["status"] for row in ingested.values()} == {"ready"}, ingested
    answered = answer_offline(
        env,
        [
            ("Where is the assembly point?", "The assembly point is the north car park [1]."),
            ("Which class for short flights?", "Economy class [1]."),
        ],
    )
    assert len(answered) == 2
    verified = manage(env, "audit", "verify").stdout.strip()
    assert verified.startswith("ok ")
    before = searches(env, root)
    archive = root / "backup.tar.gz"
    backed_up = manage(env, "backup", str(archive))
    return SimpleNamespace(
        root=root,
        env=env,
        data_dir=Path(env["DATA_DIR"]),
        archive=archive,
        ingested=ingested,
        verified=verified,
        before=before,
        output=backed_up.stdout,
    )


def empty_env(tmp_path, name="restored") -> dict[str, str]:
    return embedded_env(tmp_path / name)


def test_the_archive_holds_database_store_originals_and_a_manifest_of_them(source):
    with tarfile.open(source.archive, "r:gz") as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}
    manifest = json.loads(members.pop("manifest.json"))
    assert set(manifest["files"]) == set(members)
    for name, content in members.items():
        assert manifest["files"][name] == {
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
    assert "db.sqlite3" in members
    assert any(name.startswith("edge/segments/") for name in members)
    originals = sorted(content for name, content in members.items() if name.startswith("uploads/"))
    assert originals == sorted(DOCUMENTS.values())
    records = int(source.verified.split()[1])
    chunks = sum(row["chunks"] for row in source.ingested.values())
    assert manifest["counts"] == {
        "documents": 3,
        "chunks": chunks,
        "points": chunks,
        "audit_records": records,
        "users": manifest["counts"]["users"],
        "originals": 3,
    }
    assert manifest["counts"]["users"] >= 1
    assert manifest["packages"]["Django"] and manifest["packages"]["qdrant-edge-py"]
    assert manifest["app"]["version"] and manifest["created_at"]
    assert manifest["embedding"]["dimension"] == 384
    assert f"{chunks} passages" in source.output


def test_restore_into_an_empty_data_dir_gives_the_same_chain_search_and_originals(source, tmp_path):
    env = empty_env(tmp_path)
    restored = manage(env, "restore", str(source.archive))
    assert "sha256 and counts checked" in restored.stdout

    assert manage(env, "audit", "verify").stdout.strip() == source.verified
    assert searches(env, tmp_path) == source.before
    # the originals, byte for byte, from the restored app's download link
    server = Server(env)
    try:
        client = server.client()
        for name, row in source.ingested.items():
            response = client.get(f"/documents/{row['id']}/file")
            assert response.status_code == 200, name
            assert response.content == DOCUMENTS[name]
    finally:
        server.stop()


def test_restore_refuses_a_data_dir_that_is_not_empty_and_changes_nothing(source, tmp_path):
    files = data_files(source.data_dir)
    database = (source.data_dir / "db.sqlite3").read_bytes()
    refused = manage(source.env, "restore", str(source.archive), check=False)
    assert refused.returncode == 2
    assert "is not empty" in refused.stderr and "nothing was changed" in refused.stderr
    assert data_files(source.data_dir) == files
    assert (source.data_dir / "db.sqlite3").read_bytes() == database

    # one stray file is enough
    env = empty_env(tmp_path)
    (tmp_path / "restored" / "uploads").mkdir(parents=True)
    (tmp_path / "restored" / "uploads" / "note.txt").write_text("mine")
    refused = manage(env, "restore", str(source.archive), check=False)
    assert refused.returncode == 2, refused.stderr
    assert data_files(tmp_path / "restored") == ["uploads/note.txt"]


def _rewrite(archive: Path, target: Path, change) -> None:
    """The archive with ``change(name, bytes) -> bytes`` applied to its members (a valid gzip)."""
    with tarfile.open(archive, "r:gz") as source, tarfile.open(target, "w:gz") as out:
        for member in source:
            data = change(member.name, source.extractfile(member).read())
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize(
    "damage", ["compressed byte", "gzip trailer", "database byte", "manifest hash"]
)
def test_a_damaged_archive_is_refused_and_nothing_is_restored(source, tmp_path, damage):
    damaged = tmp_path / "damaged.tar.gz"
    if damage in ("compressed byte", "gzip trailer"):  # one byte of the file as stored
        # Early on (the database's pages), or the CRC and length at the end. Not just anywhere:
        # inside a long run of zeros (the store's preallocated files) a flipped bit can turn a
        # "copy 258 bytes from 1 back" into "from 2 back", the same zeros: the archive's content
        # is then unchanged and restoring it is right.
        raw = source.archive.read_bytes()
        damaged.write_bytes(_flip(raw, 100 if damage == "compressed byte" else len(raw) - 3))
    elif damage == "database byte":  # a well-formed archive whose database differs by a bit
        _rewrite(
            source.archive,
            damaged,
            lambda name, data: _flip(data, len(data) - 100) if name == "db.sqlite3" else data,
        )
    else:  # the manifest names another hash for an original

        def change(name, data):
            if name != "manifest.json":
                return data
            manifest = json.loads(data)
            upload = next(n for n in manifest["files"] if n.startswith("uploads/"))
            manifest["files"][upload]["sha256"] = "0" * 64
            return json.dumps(manifest).encode()

        _rewrite(source.archive, damaged, change)
    env = empty_env(tmp_path)
    refused = manage(env, "restore", str(damaged), check=False)
    assert refused.returncode == 2, refused.stderr
    assert "refused" in refused.stderr or "damaged" in refused.stderr
    if damage in ("database byte", "manifest hash"):
        assert "sha256" in refused.stderr
    assert data_files(tmp_path / "restored") == []
    assert not list((tmp_path / "restored").glob(".restoring-*"))


def test_a_file_that_is_not_an_archive_is_refused(source, tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(gzip.compress(b"not a tar file at all" * 100))
    refused = manage(empty_env(tmp_path), "restore", str(junk), check=False)
    assert refused.returncode == 2
    assert data_files(tmp_path / "restored") == []


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/h6"}, "pg_dump"),
        ({"QDRANT_URL": "http://127.0.0.1:9"}, "Qdrant snapshots"),
        ({"STORAGE_BACKEND": "s3", "S3_BUCKET": "originals"}, "bucket's versioning"),
    ],
    ids=["postgres", "qdrant-server", "bucket"],
)
@pytest.mark.parametrize("command", ["backup", "restore"])
def test_production_configuration_is_refused_naming_the_engines_tools(
    source, tmp_path, command, config, named
):
    env = embedded_env(tmp_path / "data", **config)
    target = tmp_path / "backup.tar.gz"
    path = str(target if command == "backup" else source.archive)
    refused = manage(env, command, path, check=False)
    assert refused.returncode == 2, refused.stderr
    assert named in refused.stderr and "embedded default only" in refused.stderr
    assert not target.exists()


def test_backup_never_overwrites_a_file(source, tmp_path):
    existing = tmp_path / "existing.tar.gz"
    existing.write_bytes(b"keep me")
    refused = manage(source.env, "backup", str(existing), check=False)
    assert refused.returncode == 2
    assert existing.read_bytes() == b"keep me"


def test_backup_while_the_app_serves_says_to_stop_it_and_writes_nothing(source, tmp_path):
    server = Server(source.env)
    try:
        target = tmp_path / "live.tar.gz"
        refused = manage(source.env, "backup", str(target), check=False)
        assert refused.returncode == 2, refused.stderr
        assert "stop the app first" in refused.stderr
        assert f"pid {server.process.pid}" in refused.stderr
        assert not target.exists() and not list(tmp_path.glob(".*partial"))
    finally:
        server.stop()
    # stopped, the same command works
    manage(source.env, "backup", str(target))
    assert target.stat().st_size > 0
    os.remove(target)
