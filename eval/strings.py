"""Lexical measures on plain strings: edit distance, ROUGE-L, evidence, "don't know", key facts.

``rapidfuzz`` and ``rouge_score`` are not installed, so the Levenshtein distance that ragas'
string metrics run on, and ROUGE-L, are computed here (bit-parallel over Python ints). None of
this needs ragas or a model: kept apart from ``eval.metrics``, the one module that imports ragas,
these measures stay small and testable on their own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_TOKEN = re.compile(r"[a-z0-9]+")
_DONT_KNOW = re.compile(r"\b(?:don'?t|do not) know\b", re.IGNORECASE)


def normalize_ws(text: str) -> str:
    return " ".join(text.split())


def _bitmasks(pattern: Sequence[str]) -> dict[str, int]:
    masks: dict[str, int] = {}
    for i, sym in enumerate(pattern):
        masks[sym] = masks.get(sym, 0) | (1 << i)
    return masks


def levenshtein(a: Sequence[str], b: Sequence[str]) -> int:
    """Edit distance by Hyyro's bit-vector algorithm: one pass, passage-length inputs in ms."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    peq, mask, last = _bitmasks(b), (1 << len(b)) - 1, 1 << (len(b) - 1)
    pv, mv, score = mask, 0, len(b)
    for sym in a:
        eq = peq.get(sym, 0)
        xv, xh = eq | mv, (((eq & pv) + pv) ^ pv) | eq
        ph, mh = (mv | ~(xh | pv)) & mask, pv & xh
        score += 1 if ph & last else -1 if mh & last else 0
        ph, mh = ((ph << 1) | 1) & mask, (mh << 1) & mask
        pv, mv = (mh | ~(xv | ph)) & mask, ph & xv
    return score


def string_similarity(reference: str, response: str) -> float:
    """1 - Levenshtein distance / longer length, as rapidfuzz's ``normalized_distance``."""
    longest = max(len(reference), len(response))
    return 1.0 - levenshtein(reference, response) / longest if longest else 1.0


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence length by the Allison-Dix bit-vector algorithm."""
    if len(a) < len(b):
        a, b = b, a
    peq, mask = _bitmasks(b), (1 << len(b)) - 1
    v = mask
    for sym in a:
        u = v & peq.get(sym, 0)
        v = ((v + u) | (v - u)) & mask
    return len(b) - v.bit_count()


def rouge_l(reference: str, response: str) -> float:
    """ROUGE-L F1 on rouge_score's default tokens (lower-cased alphanumerics), without stemming."""
    ref, hyp = _TOKEN.findall(reference.lower()), _TOKEN.findall(response.lower())
    lcs = _lcs(ref, hyp) if ref and hyp else 0
    return 2 * lcs / (len(ref) + len(hyp)) if lcs else 0.0


def evidence_key(text: str) -> str:
    """``text`` as evidence is compared: runs of whitespace collapsed, case folded.

    The datasets define a match this way (qa2/README.md): an evidence string is copied from the
    document, but conversion may rewrap lines or change a heading's case.
    """
    return normalize_ws(text).casefold()


def has_evidence(passage: str, evidence: Sequence[str]) -> bool:
    """Whether ``passage`` contains one of the ``evidence`` strings (compared by ``evidence_key``)."""
    text = evidence_key(passage)
    return any(evidence_key(e) in text for e in evidence if e.strip())


def is_dont_know(answer: str) -> bool:
    """Whether ``answer`` declines (the templates tell the model to say "I don't know")."""
    return _DONT_KNOW.search(answer.replace("\u2019", "'")) is not None


# Function words that carry no fact: articles, pronouns, prepositions, auxiliaries, wh-words and
# generic verbs. Negations (not, no, never) stay: they change what an answer says.
_STOPWORDS = frozenset(
    re.findall(
        r"[a-z]+",
        """
    a an the this that these those it its they them their there here he she his her we our you
    your i me my of to in on at by for from with without into onto over under about above below
    between through during before after up down out off as than then so such and or but nor if
    whether because while also only just very too more most less least much many some any each
    every all both either neither other another own same is are was were be been being am do
    does did doing done has have had having can could may might must shall should will would
    which what who whom whose when where why how use used uses using don doesn didn isn aren
    """,
    )
)
_MULTIPLIER = {"k": "thousand", "m": "million", "b": "billion", "t": "trillion"}
_SUFFIXED = re.compile(r"(\d)([kmbt])\b")  # 27B, 128K: the unit as a word, as "27 billion" has it
_WORD = re.compile(r"\d+(?:[.,]\d+)*|[a-z][a-z0-9]*")
_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+")  # 50,000 -> 50000


def _stem(word: str) -> str:
    """Plural to singular, roughly: enough to match "heads" with "head", nothing cleverer."""
    if word[0].isdigit():
        return word.replace(",", "") if _GROUPED.fullmatch(word) else word
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def content_words(text: str) -> frozenset[str]:
    """The words of ``text`` that can carry a fact, normalized so spellings of one fact meet.

    Lower-cased, punctuation dropped, stopwords and one-letter words dropped (numbers kept),
    plurals stemmed, ``27B``/``128K`` written as ``27 billion``/``128 thousand``, digit grouping
    removed (``50,000`` = ``50000``). Deterministic and dictionary-free, so a score never moves
    with a library version.
    """
    text = _SUFFIXED.sub(lambda m: f"{m[1]} {_MULTIPLIER[m[2]]}", text.lower())
    words = (w for w in _WORD.findall(text.replace("\u2019", "'")) if w not in _STOPWORDS)
    return frozenset(_stem(w) for w in words if len(w) > 1 or w.isdigit())


def key_fact_recall(answer: str, truth: str) -> float | None:
    """Share of the ground truth's content words the answer contains; None if it has none.

    An answer that declines recalls nothing, whatever words it repeats from the question.
    """
    want = content_words(truth)
    if not want:
        return None
    if is_dont_know(answer):
        return 0.0
    return len(want & content_words(answer)) / len(want)


def key_fact(answer: str, truth: str) -> bool:
    """Whether the answer states the ground truth's key fact: half its content words or more."""
    recall = key_fact_recall(answer, truth)
    return recall is not None and recall >= 0.5
