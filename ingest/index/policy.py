"""Which structure a segment gets at its size, and how many IVF lists and probes: plain arithmetic.

Split from ``ingest.index.structures`` (which builds what this decides) so the policy reads without
FAISS. A segment is exact (flat) or IVF; every IVF segment of a collection is built against one
shared coarse quantizer (``ingest.index.quantizer``), trained once, so the policy here decides
both when a segment is IVF and when the collection's quantizer no longer fits it.
"""

from __future__ import annotations

import math

__all__ = [
    "IVF_POINTS_PER_LIST",
    "QUANTIZER_POINTS_PER_LIST",
    "TRAIN_POINTS_PER_LIST",
    "auto_nlist",
    "auto_nprobe",
    "quantizer_fits",
    "quantizer_nlist",
    "wants_ivf",
]

# FAISS warns below 39 training points per centroid; below that an IVF is no better than flat.
IVF_POINTS_PER_LIST = 39
TRAIN_POINTS_PER_LIST = 64
# A collection quantizer may be trained on half as many: see ``quantizer_nlist``.
QUANTIZER_POINTS_PER_LIST = IVF_POINTS_PER_LIST // 2


def auto_nlist(n: int) -> int:
    """IVF lists for ``n`` vectors: the power of two nearest 4*sqrt(n), >= 39 points per list."""
    target = 4 * math.sqrt(max(n, 1))
    nlist = 1 << max(0, round(math.log2(target)))
    while nlist > 1 and nlist * IVF_POINTS_PER_LIST > n:
        nlist //= 2
    return nlist


def auto_nprobe(nlist: int) -> int:
    """Lists to search: 5*sqrt(nlist) (320 of 4096, 227 of 2048, 160 of 1024).

    bench/scale.py measured recall@10 0.950 at 4*sqrt (256 of 4096 lists, 1M vectors) and 0.969
    (128 of 1024, 100k); the extra quarter is margin, at ~1 ms more per query at 1M.
    """
    return min(nlist, math.ceil(5 * math.sqrt(nlist)))


def wants_ivf(n: int, kind: str, *, nlist: int, approx_above: int) -> bool:
    """Whether a new segment of ``n`` vectors is IVF (else exact).

    flat: never. ivf: once there are enough vectors to train ``nlist`` lists. auto: from
    ``approx_above`` vectors on.
    """
    if kind == "flat":
        return False
    if kind == "ivf":
        return n >= IVF_POINTS_PER_LIST * nlist
    return n >= approx_above


def quantizer_nlist(n: int, kind: str, *, nlist: int, merge_factor: int) -> int:
    """Lists of a collection quantizer trained on ``n`` vectors (the first IVF segment's).

    ivf: ``nlist``. auto: the lists ``auto_nlist`` gives the collection ``merge_factor`` times
    larger, which is what the tiered merges grow this segment's tier into, but at most one
    doubling past what ``n`` vectors train at 39 points per list. At the defaults the first IVF
    segment (100k to 160k vectors) trains 4,096 lists, those of one 1M index, on 24 to 39 points
    each. Measured at 1M (clustered vectors of bench/scale.py, single queries): 4,096 lists trained
    on 125k vectors recall@10 0.945 at 320 probes in 4.2 ms, against 0.955 in 3.9 ms when trained
    on 262k; 2,048 lists (61 points each) need the same 320 probes and 7.5 ms for 0.946.
    """
    if kind == "ivf":
        return nlist
    trainable = 1 << max(0, int(math.log2(max(n // IVF_POINTS_PER_LIST, 1))))
    return min(auto_nlist(merge_factor * n), 2 * trainable)


def quantizer_fits(quantizer_nlist: int, n: int, kind: str, *, nlist: int) -> bool:
    """Whether a segment of ``n`` vectors may use a collection quantizer of ``quantizer_nlist``.

    ivf: when it has the configured ``nlist``. auto: until ``auto_nlist`` wants 4 times its lists
    (16 times the vectors): from then on a new quantizer is trained on that segment, and the
    collection moves to it as merges rewrite the older segments.
    """
    if kind == "ivf":
        return quantizer_nlist == nlist
    return auto_nlist(n) < 4 * quantizer_nlist
