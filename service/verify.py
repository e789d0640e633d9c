"""Does each sentence of an answer say what a passage says? Support per sentence, and the citations.

A small model's [n] markers are often missing or wrong, and an answer that cites nothing used to
"cite" every passage it was shown. Here every sentence is scored against every passage it was
given, and a passage is cited only where it backs a sentence. The score is

    support = LEXICAL * lexical + (1 - LEXICAL) * semantic

- ``lexical``: the share of the sentence's content words (lower-cased, stopwords dropped, plurals
  folded) found in the passage. Answers are mostly extractive, so this is the sharper signal, and
  it catches what an encoder blurs: a wrong number, version or name scores low.
- ``semantic``: the encoder's cosine, rescaled from [COS_FLOOR, COS_CEIL] onto [0, 1]. A sentence
  against an unrelated passage sits near 0.1, against the passage it comes from near 0.4-0.7 (a
  passage says more than the sentence, so never 1): rescaled, both terms share one scale. It
  credits a paraphrase that shares few words, and breaks ties between passages that hold them all.

A sentence that uses a word only the prompt's few-shot examples held (``example_words``) names
it (``borrowed``): the word may have leaked from an example ("The shop uses ALiBi embeddings").
That is reported, not judged: the word also counts against the sentence's lexical support, and a
common word ("keep") can sit in an example and in a right answer alike.

bench/verify.py chose LEXICAL and ``rag.verify.min_support`` on the dev and qa2 questions (right
answers against the passages retrieved for them, wrong ones from other questions): words alone
separate them better than the cosine alone, and 0.7 of each is the best mix on both sets.
Support is grounding, not relevance: a wrong answer copied from a passage is supported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ingest.embed import Embedder
from service.answer import MarkerSupport, SentenceSupport, Verification
from service.settings import VerifySettings

LEXICAL = 0.7
COS_FLOOR, COS_CEIL = 0.1, 0.6
CITE = re.compile(r"\[(\d{1,3})\]")
# The templates tell the model to say "I don't know ..." (eval.strings.is_dont_know, which the
# service may not import, reads an answer the same way).
_DONT_KNOW = re.compile(r"\b(?:don'?t|do not) know\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
# A sentence ends at . ! or ? (with closing quotes and any [n] markers after it) before a space
# and something that does not start in lower case ("e.g. the" goes on), or at the end of a line.
_END = re.compile(r"[.!?]+[\"')\]]*(?:\s*\[\d{1,3}\])*(?=\s+[^a-z\s]|\s*$)")
_BULLET = re.compile(r"\s*(?:[-*+\u2022]|\d{1,3}[.)]|#{1,6})\s+")
_FENCE = re.compile(r"\s*(?:```|~~~)")
_STOP = """a about above after again all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each either else few for from
    further had has have having he her here hers him his how however i if in into is it its itself
    just may me might more most much must my no nor not now of off on once one only or other our
    out over own per same shall she should so some such than that the their them then there these
    they this those through thus to too under until up upon us very via was we were what when
    where whether which while who whom whose why will with within without would yes you your
    answer passage passages"""
STOPWORDS = frozenset(_STOP.split())
# Counting words say nothing about where an answer came from: "two" is as likely from "2" in a
# passage as from an example's "two-year warranty".
_COUNT = """one two three four five six seven eight nine ten eleven twelve hundred thousand
    million billion trillion first second third half once twice"""
_COUNTING = frozenset(_COUNT.split())


@dataclass(frozen=True)
class Sentence:
    """A stretch of the answer: ``text == answer[start:end]``, with the [n] markers it carries."""

    text: str
    start: int
    end: int
    markers: tuple[int, ...]


def content_words(text: str) -> set[str]:
    """Words that carry meaning, folded so "heads"/"head" and "16,384"/"16384" match."""
    words = _WORD.findall(_THOUSANDS.sub("", CITE.sub(" ", text.lower())))
    return {_fold(w) for w in words if w not in STOPWORDS}


def example_words(examples: Sequence[str], shown: Sequence[str]) -> frozenset[str]:
    """Content words that only the few-shot examples could lend an answer.

    ``examples``: the texts of the examples the prompt showed (questions, passages with their
    sources and headings, answers); ``shown``: everything else the model read (the question, its
    passages, the template's rules, earlier turns). Numbers and counting words are left out.
    """
    own = set().union(*map(content_words, shown))
    lent = set().union(*map(content_words, examples)) - own
    return frozenset(w for w in lent if not w[0].isdigit() and w not in _COUNTING)


def _fold(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def split_sentences(answer: str) -> list[Sentence]:
    """The answer's sentences: prose split at sentence ends, each list item and code line alone.

    Bullets and list numbers are left out of a sentence's span; fences and fragments without a
    content word ("Yes.", a lone "[2]") are not sentences.
    """
    out: list[Sentence] = []
    pos, in_code = 0, False
    for line in answer.splitlines(keepends=True):
        start, end = pos, pos + len(line.rstrip("\r\n"))
        pos += len(line)
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            out += _piece(answer, start, end)
            continue
        bullet = _BULLET.match(answer, start, end)
        if bullet:
            start = bullet.end()
        for m in _END.finditer(answer[:end], start):
            out += _piece(answer, start, m.end())
            start = m.end()
        out += _piece(answer, start, end)
    return out


def _piece(answer: str, start: int, end: int) -> list[Sentence]:
    while start < end and answer[start].isspace():
        start += 1
    while end > start and answer[end - 1].isspace():
        end -= 1
    text = answer[start:end]
    if not content_words(text):
        return []
    markers = tuple(dict.fromkeys(int(m.group(1)) for m in CITE.finditer(text)))
    return [Sentence(text, start, end, markers)]


def declines(answer: str, no_answer: str) -> bool:
    """Whether ``answer`` is the template's "I don't know" (or says it in other words)."""
    text = answer.replace("\u2019", "'")
    return no_answer.strip() in text or _DONT_KNOW.search(text) is not None


def lexical_support(sentences: Sequence[str], passages: Sequence[str]) -> np.ndarray:
    """(sentences, passages): the share of each sentence's content words in each passage."""
    bags = [content_words(p) for p in passages]
    out = np.zeros((len(sentences), len(passages)), dtype=np.float64)
    for i, s in enumerate(sentences):
        words = content_words(s)
        for j, bag in enumerate(bags):
            out[i, j] = len(words & bag) / len(words) if words else 0.0
    return out


def semantic_support(
    sentences: Sequence[str], passages: Sequence[str], embedder: Embedder
) -> np.ndarray:
    """(sentences, passages): the encoder's cosine rescaled onto [0, 1]; one encoder batch."""
    if not sentences or not passages:
        return np.zeros((len(sentences), len(passages)), dtype=np.float64)
    vectors = embedder.encode([*sentences, *passages]).astype(np.float64)
    cos = vectors[: len(sentences)] @ vectors[len(sentences) :].T
    return np.clip((cos - COS_FLOOR) / (COS_CEIL - COS_FLOOR), 0.0, 1.0)


def support_matrix(
    sentences: Sequence[str], passages: Sequence[str], embedder: Embedder
) -> np.ndarray:
    """(sentences, passages) support in [0, 1]; the formula is in the module docstring."""
    plain = [CITE.sub("", s) for s in sentences]
    lexical = lexical_support(plain, passages)
    return LEXICAL * lexical + (1 - LEXICAL) * semantic_support(plain, passages, embedder)


def verify(
    answer: str,
    passages: Sequence[str],
    embedder: Embedder,
    *,
    min_support: float,
    no_answer: str,
    example_words: frozenset[str] = frozenset(),
) -> Verification:
    """Each sentence's best passage and support, its markers' backing, and the answer's verdict.

    ``passages`` are the texts the model was shown, in prompt order ([1] is the first);
    a sentence's ``borrowed`` lists the ``example_words`` it uses.
    """
    if not passages:
        return Verification(min_support=min_support, supported_share=0.0, verdict="ungrounded")
    if declines(answer, no_answer):
        return Verification(min_support=min_support, supported_share=0.0, verdict="declined")
    found = split_sentences(answer)
    support = support_matrix([s.text for s in found], passages, embedder)
    rows = []
    for s, scores in zip(found, support, strict=True):
        best = int(np.argmax(scores))
        markers = [_marker(n, scores, min_support) for n in s.markers]
        borrowed = sorted(content_words(s.text) & example_words)
        rows.append(
            SentenceSupport(
                text=s.text,
                start=s.start,
                end=s.end,
                passage=best + 1,
                support=round(float(scores[best]), 3),
                supported=bool(scores[best] >= min_support),
                markers=markers,
                borrowed=borrowed,
            )
        )
    share = sum(r.supported for r in rows) / len(rows) if rows else 0.0
    verdict = "supported" if share == 1 else "partial" if share >= 0.5 else "unsupported"
    return Verification(
        min_support=min_support,
        supported_share=round(share, 3),
        verdict=verdict,
        sentences=rows,
    )


def _marker(n: int, scores: np.ndarray, min_support: float) -> MarkerSupport:
    """How well passage ``n`` supports the sentence that cites it (no passage n: not at all)."""
    if not 1 <= n <= len(scores):
        return MarkerSupport(n=n, support=None, backed=False)
    return MarkerSupport(
        n=n, support=round(float(scores[n - 1]), 3), backed=bool(scores[n - 1] >= min_support)
    )


def check(
    answer: str,
    passages: Sequence[str],
    embedder: Embedder,
    settings: VerifySettings,
    no_answer: str,
    *,
    streamed: bool = False,
    example_words: frozenset[str] = frozenset(),
) -> tuple[str, Verification]:
    """The text to give (``no_answer`` for a refused answer) and the answer's verification.

    An "unsupported" answer is flagged, or refused under ``on_unsupported="refuse"``, unless it
    was ``streamed``: its text has been sent, so it can only be flagged.
    """
    checked = verify(
        answer,
        passages,
        embedder,
        min_support=settings.min_support,
        no_answer=no_answer,
        example_words=example_words,
    )
    if checked.verdict != "unsupported":
        fixed = fix_markers(answer, checked) if settings.fix_markers and not streamed else answer
        if fixed != answer:
            checked.original = answer
        return fixed, checked
    if settings.on_unsupported == "refuse" and not streamed:
        checked.action, checked.original = "refused", answer
        return no_answer, checked
    checked.action = "flagged"
    return answer, checked


def fix_markers(answer: str, verification: Verification) -> str:
    """``answer`` with each unbacked [n] of a supported sentence pointing at the passage that
    backs it (dropped where the sentence already cites that one); markers record ``fixed_to``.

    Works from the last sentence back, so the offsets, which index the model's text, stay valid.
    """
    for s in reversed(verification.sentences):
        best = s.passage
        if not s.supported or best is None:
            continue
        text = answer[s.start : s.end]
        for m in s.markers:
            if m.backed or m.n == best:
                continue
            # Another marker of this sentence names (or was fixed to) the backing passage already.
            kept = any((o.fixed_to or o.n) == best for o in s.markers if o is not m)
            text = text.replace(f"[{m.n}]", "" if kept else f"[{best}]", 1)
            m.fixed_to = best
        answer = answer[: s.start] + text + answer[s.end :]
    return answer


def cited_passages(
    answer: str, n_passages: int, verification: Verification
) -> list[tuple[int, bool]]:
    """The [n] to cite, in order, each with whether it backs the answer.

    The passages the text marks, each backed if some sentence marked with it is supported by it;
    an answer without (valid) markers cites the passages that best support one of its supported
    sentences, in order of first support. A declined, ungrounded or refused answer cites nothing.
    """
    if verification.verdict in ("declined", "ungrounded") or verification.action == "refused":
        return []
    marked = [int(m.group(1)) for m in CITE.finditer(answer)]
    order = [n for n in dict.fromkeys(marked) if 1 <= n <= n_passages]
    if order:
        sentences = verification.sentences
        backed = {m.fixed_to or m.n for s in sentences for m in s.markers if m.backed or m.fixed_to}
        return [(n, n in backed) for n in order]
    backing = [s.passage for s in verification.sentences if s.supported and s.passage]
    return [(n, True) for n in dict.fromkeys(backing)]
