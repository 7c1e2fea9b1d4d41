"""Downloading data files: each from its sources in turn, checked against its sha256, written atomically."""

from __future__ import annotations

import hashlib
import io
import urllib.request
import zipfile
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from naolit.io import atomic_path

USER_AGENT = "Mozilla/5.0 (compatible; naolit)"  # some mirrors refuse urllib's default agent
TIMEOUT_S = 60


@dataclass(frozen=True)
class Source:
    """One place to download a file from: the URL itself, or `member` of the zip archive at the URL."""

    url: str
    member: str | None = None

    def __str__(self) -> str:
        return self.url if self.member is None else f"{self.url} (member {self.member})"


@dataclass(frozen=True)
class RemoteFile:
    """A data file: its name, the sha256 of its uncompressed bytes, and its sources in order of preference."""

    name: str
    sha256: str
    sources: tuple[Source, ...]


def check_sha256(data: bytes, expected: str, path: Path) -> None:
    """Raise ValueError (naming `path`, both checksums and the fix) if `data`, its bytes, hash to another value."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ValueError(
            f"{path}: sha256 is {actual}, expected {expected}: the file is damaged or not the canonical one. "
            f"Delete it and call prepare_data() to download it again, or replace it with the canonical file"
        )


def fetch(file: RemoteFile, dest: Path, cache: dict[str, bytes] | None = None) -> None:
    """Download `file` to `dest` from the first of its sources that serves bytes with the right sha256.

    `dest` appears whole or not at all (a temporary file beside it, then a rename). `cache` maps URL to
    downloaded bytes across calls, so that several members of one archive cost one download.
    Raises FileNotFoundError naming the file, every source tried and why it failed, and the fix.
    """
    cache = {} if cache is None else cache
    failures = []
    for source in file.sources:
        try:
            if source.url not in cache:
                cache[source.url] = _download(source.url)
            data = cache[source.url]
            if source.member is not None:
                data = zipfile.ZipFile(io.BytesIO(data)).read(source.member)
        except (OSError, HTTPException, zipfile.BadZipFile, KeyError) as err:
            failures.append(f"{source}: {err!r}")
            continue
        actual = hashlib.sha256(data).hexdigest()
        if actual == file.sha256:
            _write_atomic(dest, data)
            return
        failures.append(f"{source}: sha256 is {actual}, expected {file.sha256}")
    raise FileNotFoundError(
        f"{dest} does not exist and could not be downloaded:\n" + "".join(f"  {f}\n" for f in failures)
        + f"Set data_dir (paths.data_dir, or the NAOLIT_DATA_DIR environment variable) to a folder that holds "
        f"{dest.parent.name}/{file.name} (plain or .gz), or download it by hand from {file.sources[0]} to {dest}"
    )


def _download(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        return response.read()


def _write_atomic(dest: Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
