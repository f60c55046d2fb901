"""Fetch a dataset file into needle's cache folder, verifying its checksum.

Machines without network cannot download: then the caller gets a clear error that
says where to put the files by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.request
from pathlib import Path

__all__ = ["cache_dir", "fetch", "file_digest"]

# Short: an offline machine should fail fast, not hang.
TIMEOUT_SECONDS = 10.0


def cache_dir(*parts: str) -> Path:
    """``$NEEDLE_CACHE_DIR`` (default ``~/.cache/needle``) joined with ``parts``."""
    root = os.environ.get("NEEDLE_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "needle")
    return Path(root, *parts)


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest of a file's bytes (``algorithm``: "sha256", "md5", ...)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(url: str, dest: str | os.PathLike, checksum: str,
          timeout: float = TIMEOUT_SECONDS) -> Path:
    """Download ``url`` to ``dest`` unless a file with the right checksum is there.

    Parameters
    ----------
    url : str
        Where to download from.
    dest : path
        Target file; its folder is created.
    checksum : str
        ``"<algorithm>:<hex digest>"``, e.g. ``"sha256:6d95..."``.
    timeout : float
        Socket timeout in seconds.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    OSError
        When the download fails (e.g. no network) or the checksum does not match.
    """
    algorithm, expected = checksum.split(":", 1)
    dest = Path(dest)
    if dest.exists() and file_digest(dest, algorithm) == expected:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "needle"})
        with urllib.request.urlopen(request, timeout=timeout) as response, \
                open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (OSError, http.client.HTTPException) as exc:
        # HTTPException (e.g. IncompleteRead on a dropped connection) is not an OSError;
        # callers only expect OSError, and the partial file must not be left behind.
        partial.unlink(missing_ok=True)
        raise OSError(f"could not download {url}: {exc}") from exc
    got = file_digest(partial, algorithm)
    if got != expected:
        partial.unlink(missing_ok=True)
        raise OSError(f"{url}: {algorithm} checksum mismatch (got {got}, expected {expected})")
    partial.replace(dest)
    return dest
