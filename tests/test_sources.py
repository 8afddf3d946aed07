"""Dataset registry, verified downloads (local file:// URLs only), safe extraction, data_root."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import re
import tarfile
import zipfile
from pathlib import Path

import pooch
import pytest
import requests

from nuclei_pa.data.convert import CONVERTERS
from nuclei_pa.data.prepare import fetch, prepare
from nuclei_pa.data.sources import REGISTRY
from nuclei_pa.errors import InputError
from nuclei_pa.io import download
from nuclei_pa.io.dataset import read_split
from nuclei_pa.io.download import RemoteFile, extract
from tests.test_convert import write_tnbc_tree


@pytest.fixture(autouse=True)
def _no_retries(monkeypatch):
    monkeypatch.setattr(download, "DOWNLOAD_RETRIES", 0)  # pooch sleeps between retries


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def register(monkeypatch, name: str, url: str, filename: str, digest: str | None) -> None:
    """Point registry entry ``name`` at one local file (keeps its converter)."""
    src = dataclasses.replace(REGISTRY[name], files=(RemoteFile(url, filename, digest),))
    monkeypatch.setitem(REGISTRY, name, src)


def test_registry_entries_are_complete():
    assert set(REGISTRY) == {"dh100", "kumar", "tnbc"}
    for name, src in REGISTRY.items():
        assert src.name == name and src.files and src.citation and src.licence and src.notes
        assert src.converter in CONVERTERS
        for f in src.files:
            assert f.url.startswith("https://") and f.filename and "/" not in f.filename
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256)
            assert f.md5 is None or re.fullmatch(r"[0-9a-f]{32}", f.md5)
    assert REGISTRY["dh100"].files[0].url.endswith("dl=1")
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        fetch("nope", "cache")


def test_right_hash_fetches_and_extracts(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "src.zip", {"top/a.txt": b"hello", "top/sub/b.txt": b"x"})
    register(monkeypatch, "tnbc", archive.as_uri(), "data.zip", sha256(archive))
    raw = fetch("tnbc", tmp_path / "cache")
    assert raw == tmp_path / "cache" / "tnbc" / "raw"
    assert (raw / "top" / "a.txt").read_bytes() == b"hello"
    assert (tmp_path / "cache" / "tnbc" / "data.zip").is_file()
    assert not (tmp_path / "cache" / "tnbc" / "hashes.json").exists()  # hash was published
    archive.unlink()  # cached: no second download
    assert fetch("tnbc", tmp_path / "cache") == raw


def test_wrong_hash_names_file_and_both_hashes(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "src.zip", {"a.txt": b"hello"})
    wrong = "0" * 64
    register(monkeypatch, "tnbc", archive.as_uri(), "data.zip", wrong)
    with pytest.raises(InputError) as err:
        fetch("tnbc", tmp_path / "cache")
    msg = str(err.value)
    assert "data.zip" in msg and wrong in msg and sha256(archive) in msg
    assert not (tmp_path / "cache" / "tnbc" / "data.zip").exists()


def test_truncated_file_is_detected(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "src.zip", {"a.txt": bytes(range(256)) * 200})
    digest = sha256(archive)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    register(monkeypatch, "tnbc", archive.as_uri(), "data.zip", digest)
    with pytest.raises(InputError, match=f"expected {digest}"):
        fetch("tnbc", tmp_path / "cache")
    # without a published hash, the archive must still extract completely before it is trusted
    register(monkeypatch, "tnbc", archive.as_uri(), "data.zip", None)
    with pytest.raises(InputError, match=r"not a valid, complete zip.*by hand") as err:
        fetch("tnbc", tmp_path / "cache")
    assert str(tmp_path / "cache" / "tnbc" / "data.zip") in str(err.value)
    assert not (tmp_path / "cache" / "tnbc" / "data.zip").exists()
    assert not (tmp_path / "cache" / "tnbc" / "hashes.json").exists()


def test_unpublished_hash_is_recorded_then_enforced(tmp_path, monkeypatch, caplog):
    archive = make_zip(tmp_path / "src.zip", {"a.txt": b"version 1"})
    register(monkeypatch, "tnbc", archive.as_uri(), "data.zip", None)
    with caplog.at_level(logging.WARNING, logger="nuclei_pa.io.download"):
        fetch("tnbc", tmp_path / "cache")
    hashes = tmp_path / "cache" / "tnbc" / "hashes.json"
    assert json.loads(hashes.read_text()) == {"data.zip": sha256(archive)}
    assert "recorded its sha256" in caplog.text and sha256(archive) in caplog.text

    cached = tmp_path / "cache" / "tnbc" / "data.zip"
    cached.write_bytes(b"corrupted")  # the cached copy no longer matches the record
    with pytest.raises(InputError, match=r"sha256 mismatch: expected .* got") as err:
        fetch("tnbc", tmp_path / "cache")
    assert f"recorded in {hashes}" in str(err.value)

    cached.unlink()  # upstream changed: the new download differs from the record
    make_zip(archive, {"a.txt": b"version 2"})
    with pytest.raises(InputError) as err:
        fetch("tnbc", tmp_path / "cache")
    assert json.loads(hashes.read_text())["data.zip"] in str(err.value)
    assert sha256(archive) in str(err.value)
    assert f"recorded in {hashes}" in str(err.value) and "delete that entry" in str(err.value)


def test_a_published_md5_is_checked_and_nothing_is_recorded(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "src.zip", {"a.txt": b"hello"})
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    src = dataclasses.replace(
        REGISTRY["tnbc"], files=(RemoteFile(archive.as_uri(), "data.zip", md5=md5),)
    )
    monkeypatch.setitem(REGISTRY, "tnbc", src)
    assert (fetch("tnbc", tmp_path / "cache") / "a.txt").read_bytes() == b"hello"
    assert not (tmp_path / "cache" / "tnbc" / "hashes.json").exists()
    (tmp_path / "cache" / "tnbc" / "data.zip").write_bytes(b"corrupted")
    with pytest.raises(InputError, match=f"md5 mismatch: expected {md5} .*published by the"):
        fetch("tnbc", tmp_path / "cache")
    (tmp_path / "cache" / "tnbc" / "data.zip").unlink()
    wrong = dataclasses.replace(
        src, files=(RemoteFile(archive.as_uri(), "data.zip", md5="0" * 32),)
    )
    monkeypatch.setitem(REGISTRY, "tnbc", wrong)
    with pytest.raises(InputError, match=f"md5 mismatch for .*expected {'0' * 32} .*got {md5}"):
        fetch("tnbc", tmp_path / "cache")
    assert not (tmp_path / "cache" / "tnbc" / "data.zip").exists()


def test_tnbc_zip_is_pinned_to_zenodos_published_md5():
    (remote,) = REGISTRY["tnbc"].files
    assert remote.md5 == "1605712a752b201b57eacc8f866adb4f" and remote.sha256 is None
    assert remote.url == "https://zenodo.org/records/2579118/files/TNBC_NucleiSegmentation.zip"


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_an_archive_unpacking_beyond_the_limits_is_refused_before_extracting(
    tmp_path, monkeypatch, kind
):
    """2 MB of zeros compress to about 2 kB: with the limit lowered to 1 MB the archive is
    refused, naming it, before anything is written; so is one with more members than allowed."""
    members = {"big.bin": bytes(2 << 20), "small.txt": b"x"}
    if kind == "zip":
        archive = make_zip(tmp_path / "bomb.zip", members)
    else:
        archive = tmp_path / "bomb.tar.gz"
        with tarfile.open(archive, "w:gz") as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    assert archive.stat().st_size < 50_000
    monkeypatch.setattr(download, "MAX_UNPACKED_BYTES", 1 << 20)
    with pytest.raises(InputError, match=r"bomb\..*would unpack to 2097153 bytes, more than the"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    monkeypatch.setattr(download, "MAX_UNPACKED_BYTES", 4 << 20)
    monkeypatch.setattr(download, "MAX_MEMBERS", 1)
    with pytest.raises(InputError, match=r"holds 2 members, more than the 1 allowed"):
        extract(archive, tmp_path / "out")
    monkeypatch.setattr(download, "MAX_MEMBERS", 2)
    assert sorted(extract(archive, tmp_path / "out")) == ["big.bin", "small.txt"]


def test_offline_message(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'zenodo.org'")

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", refuse)
    with pytest.raises(InputError) as err:
        fetch("tnbc", tmp_path / "cache")
    msg = str(err.value)
    remote = REGISTRY["tnbc"].files[0]
    assert remote.url in msg and "Failed to resolve" in msg
    assert str(tmp_path / "cache" / "tnbc" / remote.filename) in msg
    assert "data_root" in msg and "checksum" in msg
    # a local mirror that is unreachable reads the same way
    register(monkeypatch, "kumar", (tmp_path / "absent.zip").as_uri(), "k.zip", "a" * 64)
    with pytest.raises(InputError, match=r"cannot download file://.*absent\.zip.*sha256 a{64}"):
        fetch("kumar", tmp_path / "cache")


def test_data_root_bypasses_downloads(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("nothing may be downloaded with data_root")

    monkeypatch.setattr(pooch, "create", no_network)
    monkeypatch.setattr(pooch, "retrieve", no_network)
    root = write_tnbc_tree(tmp_path / "mine", patients=1, per_patient=2)
    assert fetch("tnbc", tmp_path / "cache", data_root=root) == root
    counts = prepare("tnbc", tmp_path / "out", tmp_path / "cache", data_root=root)
    assert counts["train"] == {"images": 2, "instances": 7}
    assert not (tmp_path / "cache").exists()
    with pytest.raises(InputError, match="not a folder"):
        fetch("tnbc", tmp_path / "cache", data_root=tmp_path / "missing")


def test_prepare_downloads_and_converts(tmp_path, monkeypatch):
    tree = write_tnbc_tree(tmp_path / "tree", patients=2, per_patient=1)
    archive = tmp_path / "TNBC_NucleiSegmentation.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(tree.rglob("*.png")):
            zf.write(path, path.relative_to(tree).as_posix())
    register(monkeypatch, "tnbc", archive.as_uri(), "TNBC_NucleiSegmentation.zip", None)
    counts = prepare("tnbc", tmp_path / "out", cache_dir=tmp_path / "cache")
    assert counts["train"] == {"images": 2, "instances": 6}
    samples = list(read_split(tmp_path / "out" / "train"))
    assert [s.n_instances for s in samples] == [3, 3]


# ---------------------------------------------------------------------------------------------
# safe extraction


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil.txt", "ok/../../evil.txt"])
def test_zip_path_traversal_rejected(tmp_path, member):
    archive = make_zip(tmp_path / "bad.zip", {"fine.txt": b"ok", member: b"pwned"})
    target = tmp_path / "out" / "target"
    with pytest.raises(InputError) as err:
        extract(archive, target)
    assert "bad.zip" in str(err.value) and repr(member) in str(err.value)
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not (target / "fine.txt").exists()  # checked before anything is written


def test_zip_symlink_out_rejected(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("escape")
        info.external_attr = (0o120777 << 16) | 0  # a symlink member
        zf.writestr(info, "../../etc/passwd")
    with pytest.raises(InputError, match="link pointing outside"):
        extract(archive, tmp_path / "target")


def test_dropbox_root_entry_is_harmless(tmp_path):
    archive = make_zip(tmp_path / "dropbox.zip", {"/": b"", "DH100/a.txt": b"a"})
    extract(archive, tmp_path / "target")
    assert (tmp_path / "target" / "DH100" / "a.txt").read_bytes() == b"a"


def _tar(path: Path, add) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        add(tf)
    return path


@pytest.mark.parametrize(
    ("kind", "name", "link"),
    [
        (tarfile.REGTYPE, "../evil.txt", ""),
        (tarfile.REGTYPE, "/abs/evil.txt", ""),
        (tarfile.SYMTYPE, "innocent", "../../outside"),
        (tarfile.SYMTYPE, "innocent", "/etc/passwd"),
        (tarfile.LNKTYPE, "hard", "../outside"),
    ],
)
def test_tar_escapes_rejected(tmp_path, kind, name, link):
    def add(tf):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        data = b"pwned" if kind == tarfile.REGTYPE else b""
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))

    archive = _tar(tmp_path / "bad.tar.gz", add)
    with pytest.raises(InputError) as err:
        extract(archive, tmp_path / "out" / "target")
    assert "bad.tar.gz" in str(err.value) and repr(name) in str(err.value)
    assert not (tmp_path / "out" / "evil.txt").exists()
    assert not (tmp_path / "out" / "target" / "innocent").exists()


def test_tar_inside_is_extracted(tmp_path):
    def add(tf):
        data = b"content"
        info = tarfile.TarInfo("d/a.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))

    archive = _tar(tmp_path / "ok.tgz", add)
    assert extract(archive, tmp_path / "t") == ["d/a.txt"]
    assert (tmp_path / "t" / "d" / "a.txt").read_bytes() == b"content"
    archive.write_bytes(archive.read_bytes()[:20])
    with pytest.raises(InputError, match="not a valid, complete tar"):
        extract(archive, tmp_path / "t2")


GDRIVE_WARNING = (
    b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>"
    b"<p>Google Drive can't scan this file for viruses.</p><form action="
    b'"https://drive.google.com/uc?export=download&amp;confirm=t"></form></body></html>'
)


@pytest.mark.parametrize("pinned", [False, True])
def test_a_web_page_served_instead_of_the_file_is_recognised(tmp_path, monkeypatch, pinned):
    """Google Drive answers a large file's URL with its virus-scan page (status 200): with or
    without a pinned hash the error says so, and nothing is kept, recorded or extracted."""
    page = tmp_path / "page.zip"
    page.write_bytes(GDRIVE_WARNING)
    register(monkeypatch, "kumar", page.as_uri(), "k.zip", "b" * 64 if pinned else None)
    with pytest.raises(InputError, match=r"virus-scan warning page.*by hand") as err:
        fetch("kumar", tmp_path / "cache")
    assert "sha256 mismatch" not in str(err.value)
    assert not any((tmp_path / "cache" / "kumar").iterdir())


def test_web_page_kinds(tmp_path):
    cases = {
        b"\n  <!doctype html><title>Dropbox - Sign in</title>": "Dropbox",
        b"<html><body>Google Drive: quota exceeded drive.google.com</body></html>": "quota",
        b"<?xml version='1.0'?><!DOCTYPE html><html></html>": "HTML web page",
    }
    for k, (content, kind) in enumerate(cases.items()):
        path = tmp_path / f"p{k}"
        path.write_bytes(content)
        assert kind in download.web_page(path)
    archive = make_zip(tmp_path / "real.zip", {"index.html": b"<!doctype html><html></html>"})
    assert download.web_page(archive) is None  # a zip holding a page is still a zip


def test_kumar_zip_is_pinned_to_the_checksum_torch_em_publishes():
    (remote,) = REGISTRY["kumar"].files
    assert remote.sha256 == "25d3d3185bb2970b397cafa72eb664c9b4d24294aee382e7e3df9885affce742"
    assert "1ZgqFJomqQGNnsx7w7QBzQQMVA16lbVCA" in remote.url  # the file torch_em pins it for


def test_a_zip_declaring_a_huge_size_is_refused_from_its_directory(tmp_path, monkeypatch):
    """A 1-byte member whose central-directory entry claims 4,000,000,000 bytes: refused from
    the declared size alone, before anything is read or written."""
    archive = make_zip(tmp_path / "liar.zip", {"a.txt": b"x"})
    data = bytearray(archive.read_bytes())
    entry = data.index(b"PK\x01\x02")  # central directory header; uncompressed size at +24
    data[entry + 24 : entry + 28] = (4_000_000_000).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    monkeypatch.setattr(download, "MAX_UNPACKED_BYTES", 1 << 30)
    with pytest.raises(InputError, match=r"liar\.zip: would unpack to 4000000000 bytes"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "a.txt").exists()
