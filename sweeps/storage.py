"""Sweep storage: a local folder or any `pyarrow.fs` URI (s3://, gs://, ...).

Everything the sweep writes besides Ray's own files (the sweep description, best config,
leaderboard) goes through these helpers so both kinds of storage behave the same.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pyarrow.fs as pafs


def is_uri(location: str) -> bool:
    return "://" in location


def normalise(location: str) -> str:
    """Absolute local paths (Ray needs them), URIs unchanged."""
    return location if is_uri(location) else str(Path(location).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/"), *parts]) if is_uri(location) else str(Path(location, *parts))


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    if is_uri(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), location


def exists(location: str) -> bool:
    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_text(location: str) -> str:
    fs, path = filesystem(location)
    with fs.open_input_stream(path) as stream:
        return stream.read().decode("utf-8")


def write_text(location: str, text: str) -> None:
    """Write a whole file; on local disks atomically (temp file, then rename)."""
    fs, path = filesystem(location)
    if not is_uri(location):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        Path(tmp).write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode("utf-8"))


def check_writable(location: str, contact: bool = True) -> None:
    """Raise OSError when the storage cannot take files, before any work starts. On a local disk
    it creates and removes a probe file in the nearest existing folder (root passes `os.access`
    everywhere, and a read-only mount passes it too), so nothing is left behind; a URI is
    contacted only when `contact` (a dry run never contacts remote storage)."""
    if is_uri(location):
        if contact:
            fs, path = filesystem(location)
            fs.get_file_info(path)  # reachable and authorised: raises OSError otherwise
        return
    probe_folder(Path(location))


def probe_folder(path: Path) -> None:
    """Raise OSError unless `path` is, or could be created as, a folder that takes files: its
    nearest existing ancestor must be a folder in which a probe file can be created (and is
    removed again)."""
    path = path.expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(existing))
    probe = existing / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.touch(exist_ok=False)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or "cannot create a file", str(existing)) from None
    probe.unlink()
