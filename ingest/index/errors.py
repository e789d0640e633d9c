"""Failures of the index store that a caller may want to report or act on."""

from __future__ import annotations


class IndexStoreError(Exception):
    """Base class for index store failures the caller may want to report or act on."""


class EmbeddingMismatch(IndexStoreError):
    """The store was built with another embedding model or dim; mixing them gives garbage."""


class IndexCorrupt(IndexStoreError):
    """A version on disk does not match its manifest or the SQLite record of it."""


class WriterBusy(IndexStoreError):
    """Another writer holds the lock; there is one writer at a time per store."""
