"""Tests for ingest.clean: canonical text form, hyphenation, running headers, entities."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from ingest.clean import (
    Spellings,
    clean_text,
    decode_entities,
    join_hyphenation,
    normalize_space,
    strip_repeated_lines,
)


def test_clean_text_normalizes_characters() -> None:
    raw = "\ufeffA\u00a0b\u2003c\u200bd \ufb01nd \ufb02ow e\u0301 co\u00adoperate\x00\x07"
    assert clean_text(raw) == "A b cd find flow \u00e9 cooperate"


def test_clean_text_whitespace_and_newlines() -> None:
    raw = "\n\n  one   two\t three  \r\n\r\n\r\n\r\nfour \rfive\n\n\n"
    assert clean_text(raw) == "one two three\n\nfour\nfive"


def test_clean_text_preserve_indent_keeps_code_shape() -> None:
    code = "def f():\n\tif x:\n        return  1   \n"
    assert clean_text(code, preserve_indent=True) == "def f():\n    if x:\n        return 1"
    assert clean_text(code) == "def f():\nif x:\nreturn 1"


def test_normalize_space() -> None:
    assert normalize_space(" a \n\n b\tc ") == "a b c"


def test_join_hyphenation() -> None:
    assert join_hyphenation("an exam-\nple here") == "an example here"
    assert join_hyphenation("exam- \n  ple") == "example"
    assert join_hyphenation("state-of-\nthe-art") == "state-of-the-art"
    assert join_hyphenation("Jean-\nPaul") == "Jean-\nPaul"  # uppercase: a name, keep
    assert join_hyphenation("page 12-\n13") == "page 12-\n13"  # digits: a range, keep
    assert join_hyphenation("a list:\n- item") == "a list:\n- item"
    assert join_hyphenation("self-\nattention") == "self-attention"  # compound prefix


def test_join_hyphenation_keeps_real_hyphens() -> None:
    # The Transformer abstract: "English-" ends a line, "to-German" starts the next one.
    raw = "the WMT 2014 English-\nto-German translation task"
    assert join_hyphenation(raw) == "the WMT 2014 English-to-German translation task"
    # Two words the document uses on their own: a compound, not a syllable break.
    raw = "each sequence is aligned to a sequence-\naligned state"
    assert join_hyphenation(raw) == "each sequence is aligned to a sequence-aligned state"


def test_join_hyphenation_follows_the_documents_spelling() -> None:
    assert join_hyphenation("we pre-train it; the pre-\ntrained model") == (
        "we pre-train it; the pre-trained model"
    )
    doc = "pre-trained weights, pre-training\nmodels are pretrained"
    assert join_hyphenation("pre-\ntrained", Spellings(doc)) == "pre-trained"
    assert join_hyphenation("pre-\ntrained", Spellings("pretrained " * 3)) == "pretrained"
    # The document's spelling beats the structural guess.
    assert join_hyphenation("some-\nthing", Spellings("some thing something")) == "something"


def _page(n: int, body: str) -> str:
    return f"Journal of Tests, Vol. {n}\n{body}\nmore body text {n * 7}\n{n}"


def test_strip_repeated_lines_removes_headers_and_page_numbers() -> None:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    pages = [_page(n, f"Body {w} is unique.") for n, w in enumerate(words, start=1)]
    out = strip_repeated_lines(pages)
    for n, page in enumerate(out, start=1):
        assert "Journal of Tests" not in page
        assert page.split("\n")[-1] != str(n)
        assert f"Body {words[n - 1]} is unique." in page
    assert "more body text" in out[0]  # different digit count per page is not repetition


def test_strip_repeated_lines_keeps_lines_on_fewer_than_half_the_pages() -> None:
    pages = ["Header\nbody a", "Header\nbody b", "Other\nbody c", "X\nbody d", "Y\nbody e"]
    assert strip_repeated_lines(pages) == pages


def test_strip_repeated_lines_needs_three_pages() -> None:
    pages = ["Header\nbody a\n1", "Header\nbody b\n2"]
    assert strip_repeated_lines(pages) == pages


def test_strip_repeated_lines_alternating_headers_and_footers() -> None:
    # A book: the header and footer alternate between odd and even pages; page one opens
    # with the title, which is also every odd page's footer.
    title, author = "The LaTeX TUGboat macros", "Robin Fairbairns"
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven"]
    pages = []
    for n in range(1, 8):
        head = f"TUGboat, Volume 0, draft {900 + n}" if n % 2 else f"{900 + n} draft, TUGboat"
        foot = title if n % 2 else author
        lead = f"{title}\n{author}\n" if n == 1 else ""
        pages.append(f"{head}\n{lead}body text of {words[n]}\nmore of page {words[n]}\n{foot}")
    out = strip_repeated_lines(pages)
    assert out[0] == f"{title}\n{author}\nbody text of one\nmore of page one"
    for n, page in enumerate(out[1:], start=2):
        assert page == f"body text of {words[n]}\nmore of page {words[n]}"


def test_strip_repeated_lines_stops_at_the_first_body_line() -> None:
    # "Syntax:" repeats at the top of three pages, but below a unique first line: body text.
    pages = [f"Chapter {w}\nSyntax:\nbody {w}" for w in ("one", "two", "three")]
    assert strip_repeated_lines(pages) == pages
    pages = [f"manual 5.4 {n}\nSyntax:\nbody {w}" for n, w in ((11, "a"), (12, "b"), (13, "c"))]
    assert strip_repeated_lines(pages) == ["body a", "body b", "body c"]


def test_decode_entities() -> None:
    assert decode_entities("a &amp; b &lt;c&gt; &#8212; &#x41;") == "a & b <c> \u2014 A"
    assert decode_entities("?a=1&copy=2 &nosuchentity;") == "?a=1&copy=2 &nosuchentity;"


_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",),
        whitelist_characters="\n\r\t \u00a0\u200b\ufb01\u00ad\u0301\x00\x0c\u2028",
    ),
    max_size=200,
)


@given(_text, st.booleans())
def test_clean_text_properties(raw: str, indent: bool) -> None:
    cleaned = clean_text(raw, preserve_indent=indent)
    assert clean_text(cleaned, preserve_indent=indent) == cleaned
    assert not any(unicodedata.category(c) == "Cc" and c != "\n" for c in cleaned)
    assert "\n\n\n" not in cleaned
    assert cleaned == cleaned.strip("\n")
    assert all(line == line.rstrip() for line in cleaned.split("\n"))
    assert unicodedata.is_normalized("NFC", cleaned)


@given(_text)
def test_join_hyphenation_only_removes_hyphen_breaks(raw: str) -> None:
    joined = join_hyphenation(raw)
    assert len(joined) <= len(raw)
    assert re.sub(r"[-\s]", "", joined) == re.sub(r"[-\s]", "", raw)


_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8)
_token = st.lists(_words, min_size=1, max_size=3).map("-".join)
_lines = st.lists(st.lists(_token, min_size=1, max_size=5).map(" ".join), min_size=1, max_size=6)


@given(_lines, st.lists(st.booleans(), min_size=6, max_size=6))
def test_join_hyphenation_never_touches_in_line_hyphens(
    lines: list[str], breaks: list[bool]
) -> None:
    # Some lines end with a line-end hyphen; every in-line hyphenated token survives intact.
    raw = "\n".join(line + ("-" if cut else "") for line, cut in zip(lines, breaks, strict=False))
    joined = join_hyphenation(raw)
    for token in re.findall(r"\S+", raw):
        core = token.rstrip("-")
        if "-" in core:
            assert core in joined
    if not re.search(r"-[ \t]*\n", raw):
        assert joined == raw  # nothing at a line end: nothing changes, lines stay lines


@given(_words, _words)
def test_join_hyphenation_follows_spelling_evidence(left: str, right: str) -> None:
    assert join_hyphenation(f"{left}{right} ; {left}-\n{right}") == f"{left}{right} ; {left}{right}"
    hyphenated = f"{left}-{right}"
    assert join_hyphenation(f"{hyphenated} ; {left}-\n{right}") == f"{hyphenated} ; {hyphenated}"


_page_lines = st.lists(st.sampled_from(["Header 1", "Header 2", "x", "body", "7", "", "Foot"]))


@given(st.lists(_page_lines.map("\n".join), max_size=8))
def test_strip_repeated_lines_only_drops_edge_lines(pages: list[str]) -> None:
    out = strip_repeated_lines(pages)
    assert len(out) == len(pages)
    for before, after in zip(pages, out, strict=True):
        lines = before.split("\n")
        nonempty = [i for i, line in enumerate(lines) if line.strip()]
        body = [lines[i] for i in nonempty[2:-2]]
        kept = iter(after.split("\n"))
        assert all(any(k == line for k in kept) for line in body)  # body: a subsequence
        assert len(after.split("\n")) >= len(lines) - 4
