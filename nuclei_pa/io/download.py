"""Verified downloads: pinned or recorded checksums, web pages refused, archives safely unpacked.

Integrity rules:

  TNBC's is the MD5 Zenodo publishes for the file; Kumar's organisers publish none, so its
  SHA-256 is the one a reputable loader pins (torch_em). Dropbox (DH100) publishes none and
  re-zips on every request: the first successful download computes the file's SHA-256,
  **records it in ``hashes.json`` beside the file** and logs that it did so; later downloads
  (and reuses) are checked against that record, and a mismatch names ``hashes.json``. Keep
  ``hashes.json`` with your results: it says which upstream version you used.
- A server that answers with a web page instead of the file (Google Drive's virus-scan or quota
  page, a Dropbox sign-in page) is recognised before anything is hashed, recorded or extracted,
  and the error says which kind of page it was and how to fetch the file by hand.
- A hash mismatch is an :class:`InputError` naming the file and both hashes; an archive that
  does not open or extract completely (truncated download, a web page saved instead of the
  file) is an error too, and an unverified download that fails this way is deleted.
- Archives are extracted by a checking extractor: any member that would land outside the target
  folder (absolute path, ``..``, a link pointing out) is rejected before anything is written,
  and so is an archive declaring more than :data:`MAX_MEMBERS` members or
  :data:`MAX_UNPACKED_BYTES` bytes unpacked (a zip bomb); the bytes written are counted too.
- pooch streams into a temporary file and renames it only when complete, so an interrupted
  download never leaves a half file behind; it does not resume a partial transfer (a re-run
  downloads the file again), and a complete cached file is never downloaded twice.

Offline or behind a firewall, the error says which URL failed, the file name and checksum to
expect and where to put the file by hand; alternatively ``data_root`` points at a folder holding
the already extracted dataset, and nothing is downloaded.
"""

from __future__ import annotations

import gzip
import json
import logging
import lzma
import re
import shutil
import stat
import tarfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pooch

from nuclei_pa.errors import InputError
from nuclei_pa.io.atomic import atomic_dir, write_json

log = logging.getLogger(__name__)

HASHES_FILE = "hashes.json"
RAW_DIR = "raw"
_MARKER = ".fetched.json"  # inside raw/: the archive hashes it was extracted from
DOWNLOAD_RETRIES = 2  # pooch retries a failed transfer (network error or hash mismatch)
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MAX_UNPACKED_BYTES = 16 << 30  # the datasets here unpack to well under 1 GiB
MAX_MEMBERS = 100_000  # DH100, the largest, has a few hundred files


@dataclass(frozen=True)
class RemoteFile:
    """One file to download; ``filename`` is its name in the cache (URLs may not end in one)."""

    url: str
    filename: str
    sha256: str | None = None  # None: the source publishes none; recorded on first download
    md5: str | None = None  # the checksum a source publishes (Zenodo), used when sha256 is None


@dataclass(frozen=True)
class Checksum:
    """The checksum a file must have, and where it comes from (for error messages)."""

    alg: str  # "sha256" or "md5", as pooch names them
    digest: str
    origin: str  # e.g. "pinned in nuclei_pa.data.sources", "recorded in <folder>/hashes.json"

    @property
    def known_hash(self) -> str:
        return f"{self.alg}:{self.digest}"

    def __str__(self) -> str:
        return f"{self.alg} {self.digest}"


def expected_checksum(
    remote: RemoteFile, recorded: dict[str, str], folder: Path
) -> Checksum | None:
    """``remote``'s pinned checksum, else the SHA-256 ``hashes.json`` recorded, else None."""
    if remote.sha256:
        return Checksum("sha256", remote.sha256, "pinned in nuclei_pa.data.sources")
    if remote.md5:
        return Checksum(
            "md5", remote.md5, "published by the source, pinned in nuclei_pa.data.sources"
        )
    if remote.filename in recorded:
        return Checksum(
            "sha256",
            recorded[remote.filename],
            f"recorded in {folder / HASHES_FILE} by the first download; delete that entry to "
            "accept a new upstream version",
        )
    return None


def _file_downloader(url: str, output_file: str, pooch_obj: Any, check_only: bool = False) -> Any:
    """A pooch downloader for ``file://`` URLs (local mirrors, tests): copies the file."""
    path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if check_only:
        return path.is_file()
    shutil.copyfile(path, output_file)
    return None


def _downloader(remote: RemoteFile, dest: Path, expected: Checksum | None) -> Any:
    """pooch's downloader for the URL's scheme, refusing a web page served in the file's place
    before it is hashed, recorded or extracted (pooch then deletes its temporary file)."""
    if urllib.parse.urlparse(remote.url).scheme == "file":
        inner: Any = _file_downloader
    else:
        inner = pooch.HTTPDownloader(progressbar=False, timeout=60)

    def download(url: str, output_file: str, pooch_obj: Any, check_only: bool = False) -> Any:
        result = inner(url, output_file, pooch_obj, check_only=check_only)
        page = None if check_only else web_page(Path(output_file))
        if page:
            raise InputError(
                dest,
                f"{remote.url} returned {page} instead of the file (nothing was kept); "
                + _manual_hint(remote, dest, expected),
            )
        return result

    return download


#: What a server's web page says about itself, by words in its first bytes (lower case).
_PAGE_KINDS = (
    (
        (b"drive.google", b"virus"),
        "Google Drive's virus-scan warning page (files over ~100 MB "
        "need a confirmation click in a browser)",
    ),
    (
        (b"drive.google", b"quota"),
        "Google Drive's download-quota page (too many downloads of "
        "this file today; try later or from a browser)",
    ),
    ((b"google",), "a Google web page (a sign-in, permission or warning page)"),
    ((b"dropbox",), "a Dropbox web page (sign-in, or the shared link expired or moved)"),
    ((), "an HTML web page"),
)


def web_page(path: Path) -> str | None:
    """What kind of web page ``path`` holds (a description), or None if it is not HTML: servers
    answer with a page, status 200, where a login, a quota or a virus-scan warning intervenes."""
    with open(path, "rb") as fh:
        head = fh.read(65536)
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not (start.startswith((b"<!doctype html", b"<html")) or b"<html" in start[:1024]):
        return None
    return next(kind for words, kind in _PAGE_KINDS if all(w in head.lower() for w in words))


def read_hashes(folder: Path) -> dict[str, str]:
    path = folder / HASHES_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc}); fix or delete it") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InputError(path, "expected a JSON object of file name → sha256 hex digest")
    return data


def _manual_hint(remote: RemoteFile, dest: Path, expected: Checksum | None) -> str:
    checksum = (
        f"checksum {expected}"
        if expected
        else "no published checksum; its sha256 is recorded on first use"
    )
    return (
        f"download {remote.url} by hand and save it as {dest} ({checksum}), or set data_root "
        "to a folder holding the extracted dataset"
    )


def _download(remote: RemoteFile, folder: Path, expected: Checksum | None) -> Path:
    """Fetch one file into ``folder`` through pooch, checking ``expected`` when known."""
    dest = folder / remote.filename
    fetcher = pooch.create(
        path=folder,
        base_url="",
        registry={remote.filename: expected.known_hash if expected else None},
        urls={remote.filename: remote.url},
        retry_if_failed=DOWNLOAD_RETRIES,
    )
    try:
        return Path(fetcher.fetch(remote.filename, downloader=_downloader(remote, dest, expected)))
    except ValueError as exc:
        if "hash" not in str(exc) or expected is None:
            raise
        got = re.search(r"but got ([0-9a-fA-F]+)", str(exc))
        actual = got.group(1) if got else "unknown (see pooch's message)"
        raise InputError(
            dest,
            f"{expected.alg} mismatch for {remote.url}: expected {expected.digest} "
            f"({expected.origin}), got {actual}; the download was corrupted or the source "
            "changed (the file was not kept)",
        ) from exc
    except OSError as exc:  # requests' errors derive from OSError, as do local file errors
        raise InputError(
            dest, f"cannot download {remote.url} ({exc}); {_manual_hint(remote, dest, expected)}"
        ) from exc


def _archive_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if any(name.endswith(s) for s in ARCHIVE_SUFFIXES):
        return "tar"
    return None


def _escapes(name: str) -> bool:
    """Absolute (POSIX, Windows drive or UNC) or containing a ``..`` component."""
    parts = re.split(r"[\\/]", name)
    return name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name)) or ".." in parts


def _check_member(
    archive: Path, target: Path, name: str, link: str | None = None, hard: bool = False
) -> Path:
    """Where member ``name`` lands in ``target``; InputError if it (or its link) escapes.

    ``link``: a symlink's target (relative to the member's folder) or, with ``hard``, a hard
    link's target (relative to the archive root).
    """
    root = target.resolve()
    dest = (target / name).resolve()
    if _escapes(name) or not dest.is_relative_to(root):
        raise InputError(archive, f"member {name!r} would be extracted outside the target folder")
    if link is not None:
        absolute = link.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", link)
        link_dest = ((target if hard else dest.parent) / link).resolve()
        if absolute or not link_dest.is_relative_to(root):
            raise InputError(archive, f"member {name!r} is a link pointing outside ({link!r})")
    return dest


def _is_root_entry(name: str) -> bool:
    """Dropbox folder zips hold a "/" entry for the folder itself: harmless, skipped."""
    return name.strip("/\\.") == "" and name.endswith(("/", "\\"))


def _check_size(archive: Path, members: int, unpacked: int) -> None:
    """Refuse, before writing anything, an archive that would unpack beyond the limits."""
    if members > MAX_MEMBERS:
        raise InputError(
            archive, f"holds {members} members, more than the {MAX_MEMBERS} allowed; not extracted"
        )
    if unpacked > MAX_UNPACKED_BYTES:
        raise InputError(
            archive,
            f"would unpack to {unpacked} bytes, more than the {MAX_UNPACKED_BYTES} allowed (a "
            "zip bomb, or not the dataset); not extracted",
        )


def _copy_bounded(archive: Path, src: Any, out: Any, budget: int) -> int:
    """Copy ``src`` to ``out``, at most ``budget`` bytes (a member longer than it declared is an
    error); returns the bytes written."""
    written = 0
    while chunk := src.read(1 << 20):
        written += len(chunk)
        if written > budget:
            raise InputError(
                archive, f"unpacks to more than the {MAX_UNPACKED_BYTES} bytes allowed; stopped"
            )
        out.write(chunk)
    return written


def extract_zip(archive: str | Path, target: str | Path) -> list[str]:
    """Extract a zip into ``target`` after checking every member stays inside it.

    Links are never created: a symlink member pointing outside is rejected, one pointing inside
    is skipped (datasets do not need them). An archive over :data:`MAX_MEMBERS` members or
    :data:`MAX_UNPACKED_BYTES` declared bytes is refused first. Returns the extracted member
    names.
    """
    archive, target = Path(archive), Path(target)
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            _check_size(archive, len(infos), sum(info.file_size for info in infos))
            budget = MAX_UNPACKED_BYTES
            plan = []
            for info in infos:
                if _is_root_entry(info.filename):
                    continue
                is_link = stat.S_ISLNK(info.external_attr >> 16)
                link = zf.read(info).decode("utf-8", "replace") if is_link else None
                dest = _check_member(archive, target, info.filename, link)
                if is_link:
                    log.warning("%s: skipping symlink member %s", archive, info.filename)
                    continue
                plan.append((info, dest))
            for info, dest in plan:
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as out:
                    budget -= _copy_bounded(archive, src, out, budget)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise InputError(
            archive,
            f"not a valid, complete zip archive ({exc}); a truncated download, or a web page "
            "saved in its place",
        ) from exc
    return [info.filename for info, _ in plan]


def extract_tar(archive: str | Path, target: str | Path) -> list[str]:
    """Extract a (compressed) tar into ``target`` after checking every member stays inside it.

    Hard and symbolic links must point inside; device files and fifos are rejected, and so is
    an archive over the size limits (a tar's member sizes are what it writes). Python's ``data``
    extraction filter then applies the same rules again while writing.
    """
    archive, target = Path(archive), Path(target)
    try:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            _check_size(archive, len(members), sum(m.size for m in members if m.isfile()))
            for m in members:
                if m.issym():
                    _check_member(archive, target, m.name, m.linkname)
                elif m.islnk():
                    _check_member(archive, target, m.name, m.linkname, hard=True)
                else:
                    _check_member(archive, target, m.name)
                if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                    raise InputError(archive, f"member {m.name!r} is a device file or fifo")
            tf.extractall(target, members=members, filter="data")
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError) as exc:
        if isinstance(exc, tarfile.FilterError):
            raise InputError(archive, f"unsafe member rejected ({exc})") from exc
        raise InputError(
            archive, f"not a valid, complete tar archive ({type(exc).__name__}: {exc})"
        ) from exc
    return [m.name for m in members]


def extract(archive: str | Path, target: str | Path) -> list[str]:
    """Extract a zip or tar archive safely (see :func:`extract_zip`, :func:`extract_tar`)."""
    kind = _archive_kind(Path(archive))
    if kind == "zip":
        return extract_zip(archive, target)
    if kind == "tar":
        return extract_tar(archive, target)
    raise ValueError(f"{archive}: not an archive by its name ({', '.join(ARCHIVE_SUFFIXES)})")


def _unpack(files: Iterable[tuple[Path, str]], raw: Path) -> None:
    """Extract (or copy) the downloaded files into ``raw`` atomically, with a marker of hashes."""
    files = list(files)
    marker = {path.name: digest for path, digest in files}
    marker_path = raw / _MARKER
    if marker_path.is_file():
        try:
            if json.loads(marker_path.read_text()) == marker:
                return
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    with atomic_dir(raw) as tmp:
        for path, _ in files:
            if _archive_kind(path) is None:
                shutil.copyfile(path, tmp / path.name)
            else:
                extract(path, tmp)
        write_json(tmp / _MARKER, marker)


def _check_cached(dest: Path, expected: Checksum | None) -> None:
    """A file already in the cache must still be the one its checksum names."""
    if dest.exists() and expected is not None:
        actual = pooch.file_hash(str(dest), alg=expected.alg)
        if actual != expected.digest:
            raise InputError(
                dest,
                f"{expected.alg} mismatch: expected {expected.digest} ({expected.origin}), got "
                f"{actual}; the cached file is corrupt or from another version of the source "
                "(delete it to download again)",
            )


def _record(folder: Path, recorded: dict[str, str], path: Path, digest: str, owner: str) -> None:
    recorded[path.name] = digest
    write_json(folder / HASHES_FILE, recorded)
    log.warning(
        "%s publishes no checksum for %s; recorded its sha256 %s in %s (later downloads and "
        "reuses are checked against it)",
        owner,
        path.name,
        digest,
        folder / HASHES_FILE,
    )


def download_file(remote: RemoteFile, folder: str | Path) -> Path:
    """One file (e.g. pretrained weights) into ``folder``, verified as dataset files are: its
    pinned SHA-256, or the one recorded in ``folder/hashes.json`` by its first download."""
    folder = Path(folder)
    recorded = read_hashes(folder)
    expected = expected_checksum(remote, recorded, folder)
    _check_cached(folder / remote.filename, expected)
    path = _download(remote, folder, expected)
    if expected is None:
        _record(folder, recorded, path, pooch.file_hash(str(path), alg="sha256"), remote.url)
    return path


def fetch_files(files: Iterable[RemoteFile], folder: str | Path, owner: str) -> Path:
    """``folder/raw``: ``files`` downloaded (or reused) into ``folder``, verified and unpacked.

    ``owner`` (a dataset's name) is who logs say publishes no checksum. A file placed by hand at
    ``folder/<filename>`` is used (and checked) instead of downloading it.
    """
    files = tuple(files)
    folder = Path(folder)
    recorded = read_hashes(folder)
    fetched: list[tuple[Path, str]] = []
    unverified: list[tuple[Path, bool]] = []  # (file, downloaded by this call)
    for remote in files:
        expected = expected_checksum(remote, recorded, folder)
        dest = folder / remote.filename
        fresh = not dest.exists()
        _check_cached(dest, expected)
        path = _download(remote, folder, expected)
        fetched.append(
            (path, expected.known_hash if expected else pooch.file_hash(str(path), alg="sha256"))
        )
        if expected is None:
            unverified.append((path, fresh))
    try:
        _unpack(fetched, folder / RAW_DIR)
    except InputError as exc:
        dropped = [path for path, fresh in unverified if fresh]
        for path in dropped:  # nothing vouches for these files: do not keep them
            path.unlink(missing_ok=True)
        if not dropped:
            raise
        remote = next(f for f in files if f.filename == dropped[0].name)
        raise InputError(
            exc.path,
            f"{exc.problem}; the download was deleted. {_manual_hint(remote, dropped[0], None)}",
        ) from exc
    digests = dict((p.name, d) for p, d in fetched)
    for path, _ in unverified:
        _record(folder, recorded, path, digests[path.name], owner)
    return folder / RAW_DIR


__all__ = [
    "ARCHIVE_SUFFIXES",
    "Checksum",
    "RemoteFile",
    "download_file",
    "expected_checksum",
    "extract",
    "extract_tar",
    "extract_zip",
    "fetch_files",
    "web_page",
]
