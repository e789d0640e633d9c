"""Failures of the index store that a caller may want to report or act on."""

from __future__ import annotations

import errno
import sqlite3

# SQLite's primary result codes for a full disk and an I/O error, as the errno they stand for.
_SQLITE_ERRNO = {13: errno.ENOSPC, 10: errno.EIO}  # SQLITE_FULL, SQLITE_IOERR
_FULL = {errno.ENOSPC, errno.EDQUOT}


class IndexStoreError(Exception):
    """Base class for index store failures the caller may want to report or act on."""


class EmbeddingMismatch(IndexStoreError):
    """The store was built with another embedding model or dim; mixing them gives garbage."""


class IndexCorrupt(IndexStoreError):
    """A version on disk does not match its manifest or the SQLite record of it."""


class WriterBusy(IndexStoreError):
    """Another writer holds the lock; there is one writer at a time per store."""


class StorageError(IndexStoreError):
    """The disk refused a commit's writes (full, or an I/O error); the previous version stands.

    ``errno`` is the operating system's code (``ENOSPC``, ``EIO``...) where one is known, so a
    caller can tell a full disk, which freeing space cures, from a failing one.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.errno = code


def storage_failure(e: BaseException, version: int, current: int) -> StorageError | None:
    """``e`` as a one-line ``StorageError`` if the disk refused a write, else None (a bug).

    SQLite reports a full or failing disk as its own error codes, not an ``OSError``; both say
    the same thing to the operator.
    """
    if isinstance(e, OSError):
        code = e.errno
        reason = e.strerror or str(e)
    elif isinstance(e, sqlite3.OperationalError):
        primary = getattr(e, "sqlite_errorcode", 0) & 0xFF
        code = _SQLITE_ERRNO.get(primary)
        if code is None:
            return None
        reason = str(e)
    else:
        return None
    name = errno.errorcode.get(code, "") if code is not None else ""
    return StorageError(
        f"could not write index version {version}: {reason}{f' ({name})' if name else ''}; "
        f"version {current} is unchanged and still served; "
        + ("free disk space and run again" if code in _FULL else "check the disk and run again"),
        code,
    )
