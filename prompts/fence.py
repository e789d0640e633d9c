"""What keeps retrieved text inside its fence: forged structure defanged, a keyed fence marker.

A document's author controls what a retrieved passage says, so anything in it that looks like the
prompt's own structure is made inert before the model sees it: the fence markers (in any case,
with spaces anywhere between their punctuation: ``</PASSAGE>``, ``< /passage >``), a passage
header (``[9] (source: ...)``), the layout's labels and chat role lines at a line start
(``Question:``, ``assistant:``, ``### Instruction``) and chat-template control tokens
(``<|im_end|>``, ``<end_of_turn>``). The embedded backend tokenizes retrieved text without special
tokens, but an OpenAI-compatible server (llama.cpp's, vLLM) renders the chat template to a string
and tokenizes all of it with special tokens: there ``<|im_end|>`` in a passage ends the user's turn.

Defanging turns a match's ASCII punctuation into its fullwidth form (``<`` to ``＜``, ``:`` to
``：``): the text still reads the same to a model, but no longer matches a marker, a label or a
control token, and defanged text never matches again, so cleaning is idempotent.

The fence itself carries a marker per request (``<passage-1f9c2a7e>``): a keyed hash (HMAC) of
the request's content under a secret the installation keeps, so a document's author cannot guess
it, yet identical requests render identically (temperature-0 answers and eval caches stay
reproducible). Only the request's own passages carry it; the instruction and few-shot examples
keep the template's markers, so the prompt prefix stays byte-identical for the prefix cache.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from prompts.template import Passage, Template

Fence = tuple[str, str]  # the open and close markers around a passage
NONCE_CHARS = 8  # hex digits of the HMAC in a request's fence: 32 bits for a one-shot guess

# The punctuation structure is made of; ``_-.,'"`` inside words and names stay as they are.
_ASCII_PUNCT = "!#$%&()*+/:;<=>?@[\\]^`{|}~"
_FULLWIDTH = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in _ASCII_PUNCT})
_TAG = re.compile(r"</?([A-Za-z][\w.-]*)>")
_NEVER = re.compile("(?!)")

# Control-token spellings of common chat templates and tokenizers: <|im_start|>, <|endoftext|>,
# DeepSeek's <｜...｜>, Gemma's and SentencePiece's named ones, Llama 2 / Mistral's brackets.
_NAMED_TOKENS = (
    "s|bos|eos|pad|unk|mask|sep|cls|start_of_turn|end_of_turn|start_of_image|end_of_image"
    "|image_soft_token|tool_call|tool_response|think"
)
SPECIAL_TOKENS = re.compile(
    r"<\s*[|｜][^<>|｜\n]{1,64}[|｜]\s*>"
    rf"|<\s*/?\s*(?:{_NAMED_TOKENS})\s*>"
    r"|\[\s*/?\s*(?:INST|SYS|TOOL_CALLS|AVAILABLE_TOOLS|TOOL_RESULTS)\s*\]"
    r"|<<\s*/?\s*SYS\s*>>",
    re.IGNORECASE,
)
# Role lines of chat transcripts and instruction formats, at the start of a line.
_ROLES = "system|user|assistant|human|ai|model|bot|instruction|instructions|response"
_LINE_START = r"^([ \t>*_`]*)"
_ROLE_LINE = re.compile(
    rf"{_LINE_START}((?:{_ROLES})[ \t]*:|#+[ \t]*(?:{_ROLES})\b)", re.IGNORECASE | re.MULTILINE
)


def defang(text: str) -> str:
    """``text`` with its structural ASCII punctuation fullwidth (all of it, if it has none)."""
    out = text.translate(_FULLWIDTH)
    if out != text:
        return out
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def loose(literal: str) -> str:
    """A regex for ``literal`` in any case with any whitespace around its punctuation.

    ``</passage>`` matches ``< / PASSAGE >`` but not ``</pass age>``: a word split in two is no
    longer read as the word.
    """
    parts = []
    for i, c in enumerate(literal):
        if c.isspace():
            parts.append(r"\s*")
            continue
        parts.append(re.escape(c))
        nxt = literal[i + 1] if i + 1 < len(literal) else ""
        if nxt and not nxt.isspace() and not (c.isalnum() and nxt.isalnum()):
            parts.append(r"\s*")
    return "".join(parts)


def marker_pattern(marker: str) -> str:
    """A regex for a fence ``marker`` as a document might forge it.

    A tag (``<passage>``, ``</passage>``) matches as any tag of that name, opening or closing,
    with anything before its ``>`` (``<Passage id=x>``, ``</passage-1f9c2a7e>``); any other marker
    matches ``loose``-ly.
    """
    tag = _TAG.fullmatch(marker)
    if tag:
        return rf"<\s*/?\s*{re.escape(tag.group(1))}(?![\w])[^<>\n]{{0,80}}>"
    return loose(marker)


def _sub(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda m: defang(m.group()), text)


def _sub_line(pattern: re.Pattern[str], text: str) -> str:
    """Defang group 2 of ``pattern``'s matches; group 1 (what precedes it on its line) stays."""
    return pattern.sub(lambda m: m.group(1) + defang(m.group(2)), text)


@lru_cache(maxsize=256)
def _anywhere(markers: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = sorted({marker_pattern(m) for m in markers if m.strip()}, key=len, reverse=True)
    return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else _NEVER


def neutralize(text: str, markers: Sequence[str]) -> str:
    """``text`` with every ``markers`` look-alike (any case, any spacing) and control token
    defanged, wherever it occurs."""
    text = _sub(_anywhere(tuple(markers)), text)
    return _sub(SPECIAL_TOKENS, text)


@dataclass(frozen=True)
class Cleaner:
    """Defangs one template's structure in untrusted text (passages, sources, headings).

    ``markers`` are matched anywhere, ``header`` is the literal text around a passage header's
    number (``[``, ``] (source:``), ``labels`` at the start of a line and ``separator`` as a
    whole line.
    """

    markers: tuple[str, ...]
    header: tuple[str, str] | None
    labels: tuple[str, ...]
    separator: str = ""

    @property
    def _patterns(self) -> tuple[re.Pattern[str], ...]:
        return _compiled(self)

    def block(self, text: str) -> str:
        """Multi-line text (a passage's body, a chat message)."""
        header, labels, separator = self._patterns
        text = neutralize(text, self.markers)
        text = _sub(header, text)
        text = _sub(separator, text)
        text = _sub_line(labels, text)
        return _sub_line(_ROLE_LINE, text)

    def inline(self, text: str) -> str:
        """One-line text (a source, a heading): whitespace collapsed, then cleaned as a block."""
        return self.block(" ".join(text.split()))


@lru_cache(maxsize=64)
def _compiled(c: Cleaner) -> tuple[re.Pattern[str], ...]:
    flags = re.IGNORECASE | re.MULTILINE
    header = (
        re.compile(loose(c.header[0]) + r"\s*\d+\s*" + loose(c.header[1]), re.IGNORECASE)
        if c.header
        else _NEVER
    )
    labels = "|".join(loose(x.strip()) for x in c.labels if x.strip())
    label = re.compile(f"{_LINE_START}({labels})", flags) if labels else _NEVER
    sep = c.separator.strip()
    separator = re.compile(rf"^[ \t]*{re.escape(sep)}[ \t]*$", flags) if sep else _NEVER
    return header, label, separator


def header_literals(header: str) -> tuple[str, str] | None:
    """The literal text around ``{n}`` in a header pattern, up to the next placeholder.

    ``[{n}] (source: {source}{page})`` gives ``("[", "] (source:")``; None without ``{n}`` or
    without literal text on either side (nothing to recognise a forged header by).
    """
    if "{n}" not in header:
        return None
    before, after = header.split("{n}", 1)
    before = before.rsplit("}", 1)[-1].strip()
    after = after.split("{", 1)[0].strip()
    return (before, after) if before and after else None


def nonce(key: bytes, content: Iterable[object]) -> str:
    """The request's fence nonce: an HMAC of its ``content`` (JSON-serialisable) under ``key``."""
    data = json.dumps(list(content), ensure_ascii=False, default=str).encode("utf-8")
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:NONCE_CHARS]


def keyed_marker(marker: str, value: str) -> str:
    """``marker`` carrying ``value``: ``<passage>`` becomes ``<passage-VALUE>``, others get
    ``-VALUE`` appended."""
    if _TAG.fullmatch(marker):
        return f"{marker[:-1]}-{value}>"
    return f"{marker}-{value}"


def cleaner(t: Template) -> Cleaner:
    """What defangs ``t``'s structure in untrusted text: its fence markers anywhere, a passage
    header, its labels at a line start, its example separator as a line."""
    ctx, lay = t.context, t.layout
    return Cleaner(
        markers=(ctx.open, ctx.close),
        header=header_literals(ctx.header),
        labels=(lay.passages, lay.question, lay.answer, lay.conversation),
        separator=lay.example_separator,
    )


def request_fence(
    t: Template,
    key: bytes | None,
    question: str,
    passages: Sequence[Passage],
    history: Sequence[tuple[str, str]],
) -> Fence:
    """The template's markers keyed with the request's nonce (``fence.nonce``); without a key,
    the template's own (the examples always use those)."""
    ctx = t.context
    if key is None:
        return ctx.open, ctx.close
    content = [t.ref, question, [[p.text, p.source, p.page, p.heading] for p in passages]]
    n = nonce(key, [*content, [list(x) for x in history]])
    return keyed_marker(ctx.open, n), keyed_marker(ctx.close, n)
