"""What a chunk is indexed with besides its own words: its document's title and section path.

A passage of a manual often describes a property of the tool without naming the tool; embedded
and BM25-indexed on its own, it loses to any distractor that does name it. Prefixing the title
and heading path to what the encoder and BM25 read (never to the stored text that answers quote
and cite) lets the chunk be found by what it is about. The prefix is bounded in tokens so that a
long title or a deep section path cannot crowd the chunk's own text out of the encoder's window.

The document title is chosen once per document here, whatever the format: the converter's own
title (PDF metadata, HTML ``<title>``/``<h1>``, Markdown front matter) when it looks like a
title, else a heading that opens the document (PDF outline, Markdown ``#``; not the guessed
headings of plain text, nor a numbered section such as a PDF's "1 Introduction"), else the file
name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePath
from typing import Literal

from ingest.clean import normalize_space
from ingest.model import Chunk, Document

__all__ = [
    "LEGACY_CONTEXT",
    "PREFIX_TOKENS",
    "ContextEmbedding",
    "ContextMode",
    "context_prefix",
    "contextual_text",
    "document_title",
    "file_title",
    "plausible_title",
]

ContextMode = Literal["none", "heading", "title+heading"]
# How the encoder reads the prefix: with every chunk's text, or once per distinct prefix, its vector
# added to the text's (see ``ingest.settings.ChunkSettings.context_embedding``).
ContextEmbedding = Literal["prefix", "added"]
# What documents indexed before the setting existed were indexed with (heading path in BM25 and,
# by default, in the embedding): their NULL ``context`` column reads as this.
LEGACY_CONTEXT: ContextMode = "heading"
# Bound on the prefix: chunks are 64 tokens and the encoder reads 254, so the text keeps most of
# the window and the prefix cannot dominate a short chunk's embedding.
PREFIX_TOKENS = 24

# Titles that tools write for you: "Microsoft Word - report.doc", "untitled", a path or file name.
_TOOL_TITLE = re.compile(r"^(microsoft\s+\w+\s+-|untitled\b|document\d*$|slide\s*\d+$)", re.I)
_FILE_LIKE = re.compile(
    r"(^[a-z]:\\|^/|\.(pdf|docx?|odt|rtf|tex|ltx|dtx|sty|cls|texi|dvi|ps|eps|txt|md|html?|indd|qxd|pptx?|xlsx?)$)",
    re.I,
)
# A heading that opens many documents but names none of them.
_GENERIC = frozenset(
    {
        *("abstract", "contents", "table of contents", "introduction", "preface", "foreword"),
        *("copyright", "overview", "summary", "index", "title page"),
    }
)
_OPENING_CHARS = 300  # a heading this close to the start opens the document
# "1 Introduction", "2.3 Setup": a numbered heading names a part of the document, not the whole.
_NUMBERED = re.compile(r"^\d{1,2}(\.\d{1,2})*\.?\s")


def plausible_title(title: str | None) -> str | None:
    """``title`` with its spaces normalized, or None when it is empty or clearly not a title."""
    t = normalize_space(title or "")
    if not t or len(t) > 200 or not any(c.isalpha() for c in t):
        return None
    if _TOOL_TITLE.search(t) or _FILE_LIKE.search(t) or t.casefold() in _GENERIC:
        return None
    return t


def file_title(name: str) -> str:
    """The file name without folders and suffix, separators as spaces: the last-resort title."""
    return normalize_space(re.sub(r"[_-]+", " ", PurePath(name).stem)) or name


def document_title(doc: Document, name: str) -> str:
    """The title a document is stored and indexed under (see the module docstring for the order)."""
    if title := plausible_title(doc.title):
        return title
    if doc.kind == "text":
        return file_title(name)  # its headings are guessed from line shapes: the name is surer
    opening = doc.sections[0] if doc.sections else None
    if (
        opening is not None
        and opening.start <= _OPENING_CHARS
        and not _NUMBERED.match(opening.title)
    ):
        return plausible_title(opening.title) or file_title(name)
    return file_title(name)


def _prefix_parts(mode: ContextMode, title: str | None, chunk: Chunk) -> list[str]:
    path = list(chunk.heading) if mode != "none" else []
    if mode == "title+heading" and title:
        if path and path[0].casefold() == title.casefold():
            path = path[1:]  # a record's title is also its heading; an h1 often repeats <title>
        path.insert(0, title)
    if path and chunk.text.startswith(path[-1]):
        path.pop()  # the chunk opens with its own heading: no need to read it twice
    return path


def context_prefix(
    mode: ContextMode,
    title: str | None,
    chunk: Chunk,
    count_tokens: Callable[[str], int] | None = None,
) -> str:
    """``title > section > ...`` for ``chunk`` under ``mode`` ("" when there is none).

    With ``count_tokens`` the prefix is cut to ``PREFIX_TOKENS`` (whole words, the innermost
    sections dropped first, since the title and outer sections say what the document is about).
    """
    parts = _prefix_parts(mode, title, chunk)
    if not parts:
        return ""
    prefix = " > ".join(parts)
    if count_tokens is not None and count_tokens(prefix) > PREFIX_TOKENS:
        prefix = _truncate(prefix, count_tokens)
    return prefix


def contextual_text(
    mode: ContextMode,
    title: str | None,
    chunk: Chunk,
    count_tokens: Callable[[str], int] | None = None,
) -> str:
    """What BM25 (and, with ``context_embedding = "prefix"``, the encoder) reads for ``chunk``:
    its ``context_prefix``, a line break, its text."""
    prefix = context_prefix(mode, title, chunk, count_tokens)
    return prefix + "\n" + chunk.text if prefix else chunk.text


def _truncate(prefix: str, count_tokens: Callable[[str], int]) -> str:
    """The longest run of whole words from the start of ``prefix`` within the token bound."""
    words = prefix.split(" ")
    lo, hi = 0, len(words)  # words[:lo] fits; words[:hi + 1] does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(" ".join(words[:mid])) <= PREFIX_TOKENS:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo]).rstrip(" >")
