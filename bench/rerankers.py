"""Model-based second stages over the hybrid top candidates, with the models that ship here.

bench/second_stage.py measured the cheap reorderings (field BM25, windows, document votes) and
found none beyond noise; most qa2 misses rank 6th-12th inside their own document. No
cross-encoder ships in a package here, so this measures what the installed models can do instead,
on the same index and questions (dev + the answerable qa2 questions, bench distractors in the
index), each against the first stage with a paired bootstrap over both sets:

- ``maxsim``: late interaction with the MiniLM encoder itself (ColBERT-style: each question token
  takes its best cosine over the passage's tokens, averaged), over the top ``--maxsim-top``
  passages, each read with its title and heading path as the index embeds it. Alone, and fused
  by RRF with the first-stage rank.
- ``judge``: the embedded instruct model (Qwen2.5-Coder 0.5B) asked per passage "does it answer
  the question?", scored by log p(yes) - log p(no), over the top ``--judge-top``; slow, so
  ``--judge-cases`` limits it to the first qa2 questions.
- ``hyde``: the instruct model writes a short passage answering the question (at most 64
  tokens), whose vector is added to the question's (dense side), or whose words are added to
  BM25's query too; retrieval is then the serving hybrid retrieval.

Costs are per question on 2 threads (torch for maxsim, as the int8 ONNX graph outputs only the
pooled vector).

    .venv/bin/python bench/rerankers.py [--home /tmp/ragtune-quality] [--judge-cases 12]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_file import write_results  # noqa: E402
from bench.retrieval_quality import DATASETS, build_index  # noqa: E402
from bench.second_stage import Candidates, K, _ranks, collect, fuse  # noqa: E402
from eval.dataset import load_dataset  # noqa: E402
from eval.retrieval import dataset_label, is_answerable  # noqa: E402
from eval.stats import paired_bootstrap  # noqa: E402
from eval.strings import has_evidence  # noqa: E402
from ingest.embed import Embedder, default_model_path  # noqa: E402
from ingest.index import IndexReader  # noqa: E402
from ingest.search import retrieve  # noqa: E402
from ingest.settings import RetrievalSettings  # noqa: E402

JUDGE_SYSTEM = (
    "You judge search results. Say yes if the passage contains the answer to the question, "
    "otherwise no."
)


def passages(index: IndexReader, ids: list[int], titles: dict[str, str]) -> list[str]:
    """The candidates as the index embeds them (title > heading path. text), read in one go."""
    return [
        f"{' > '.join([titles.get(h.doc_id, ''), *h.heading])}. {h.text}"
        for h in index.hits(ids, [0.0] * len(ids))
    ]


def maxsim(cands: list[Candidates], index: IndexReader, top: int, threads: int) -> float:
    """Late-interaction scores of the top candidates (``c.llm`` reused as the score slot)."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(str(default_model_path()), device="cpu")
    titles = {d.doc_id: d.title or "" for d in index.documents()}

    def tokens(texts: list[str]) -> list[np.ndarray]:
        out = model.encode(texts, output_value="token_embeddings", convert_to_numpy=False)
        vecs = [o.numpy()[1:-1] for o in out]  # without [CLS] and [SEP]
        return [v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-9) for v in vecs]

    t0 = time.perf_counter()
    for c in cands:
        q = tokens([c.case.question])[0]
        docs = tokens(passages(index, c.ids[:top], titles))
        c.llm = np.array([float((q @ d.T).max(axis=1).mean()) for d in docs])
    return (time.perf_counter() - t0) / max(len(cands), 1)


def instruct_model(threads: int, n_ctx: int) -> Any:
    """The embedded default instruct model (Qwen2.5-Coder 0.5B) on ``threads`` threads."""
    from llama_cpp import Llama

    from service.llm.presets import model_file, preset

    return Llama(
        str(model_file(preset("qwen2.5-coder-0.5b-instruct"))),
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )


def judge(cands: list[Candidates], index: IndexReader, top: int, threads: int) -> float:
    """log p(yes) - log p(no) of the instruct model per top candidate; seconds per candidate."""
    llm = instruct_model(threads, n_ctx=1024)
    vocab = llm.n_vocab()

    def first(s: str) -> int:
        return llm.tokenize(s.encode(), add_bos=False)[0]

    yes, no = [first("yes"), first("Yes")], [first("no"), first("No")]
    titles = {d.doc_id: d.title or "" for d in index.documents()}
    n, t0 = 0, time.perf_counter()
    for c in cands:
        head = (
            f"<|im_start|>system\n{JUDGE_SYSTEM}<|im_end|>\n<|im_start|>user\n"
            f"Question: {c.case.question}\n\nPassage:"
        )
        llm.reset()
        llm.eval(llm.tokenize(head.encode(), add_bos=False, special=True))
        shared = llm.n_tokens  # the question is evaluated once; each passage follows it
        scores = []
        for text in passages(index, c.ids[:top], titles):
            tail = (
                f" {text}\n\nDoes the passage answer the question? "
                "Answer yes or no.<|im_end|>\n<|im_start|>assistant\n"
            )
            llm.n_tokens = shared
            llm.eval(llm.tokenize(tail.encode(), add_bos=False, special=True))
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,))
            scores.append(float(np.logaddexp.reduce(logits[yes]) - np.logaddexp.reduce(logits[no])))
            n += 1
        c.llm = np.array(scores)
    return (time.perf_counter() - t0) / max(n, 1)


def hyde_passages(questions: list[str], threads: int) -> tuple[list[str], float]:
    llm = instruct_model(threads, n_ctx=512)
    out, t0 = [], time.perf_counter()
    for q in questions:
        reply = llm.create_chat_completion(
            messages=[
                {"role": "system", "content": "You write one short paragraph of documentation."},
                {
                    "role": "user",
                    "content": "Write the passage of the documentation that answers this "
                    f"question (2-3 sentences):\n{q}",
                },
            ],
            max_tokens=64,
            temperature=0.0,
        )
        out.append(str(reply["choices"][0]["message"]["content"]))  # type: ignore[index]
    return out, (time.perf_counter() - t0) / max(len(questions), 1)


class _Mixed:
    """An encoder whose query vector is normalize(v(question) + w * v(hypothetical passage))."""

    def __init__(self, embedder: Embedder, weight: float, extra: str) -> None:
        self.embedder, self.weight, self.extra = embedder, weight, extra

    def encode(self, texts: list[str]) -> np.ndarray:
        v = self.embedder.encode(texts) + self.weight * self.embedder.encode([self.extra])
        return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), np.float32)


def hits_of(cands: list[Candidates], order: dict[str, list[int]] | None = None) -> np.ndarray:
    return np.array(
        [
            float(any(c.ok[j] for j in (order or {}).get(c.case.id, range(len(c.ids)))[:K]))
            for c in cands
        ]
    )


def compare(
    name: str, rows: list[dict], got: dict[str, np.ndarray], base: dict[str, np.ndarray], cost: str
) -> None:
    cmp = paired_bootstrap(np.concatenate(list(got.values())), np.concatenate(list(base.values())))
    verdict = "better" if cmp.better else "worse" if cmp.worse else "within noise"
    cells = "  ".join(f"{lab} {v.mean():.3f}" for lab, v in got.items())
    print(
        f"{name:<34} {cells}  {cmp.diff:+.3f} [{cmp.ci_low:+.3f}, {cmp.ci_high:+.3f}] {verdict}  {cost}"
    )
    rows.append(
        {
            "stage": name,
            **{f"{lab} hit@5": round(float(v.mean()), 4) for lab, v in got.items()},
            "n": {lab: len(v) for lab, v in got.items()},
            "vs_first_stage": cmp.as_dict(),
            "verdict": verdict,
            "cost": cost,
        }
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path("/tmp/ragtune-quality"))
    ap.add_argument("--maxsim-top", type=int, default=40)
    ap.add_argument("--judge-top", type=int, default=20)
    ap.add_argument("--judge-cases", type=int, default=12, help="first qa2 questions judged")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rerankers.json")
    args = ap.parse_args()
    _, embedder, index = build_index(args.home)
    sets = {
        dataset_label(p): collect(
            index, embedder, [c for c in load_dataset(p) if is_answerable(c)], args.maxsim_top
        )
        for p in DATASETS
    }
    base = {lab: hits_of(cs) for lab, cs in sets.items()}
    rows: list[dict] = []
    compare("first stage (hybrid rrf)", rows, base, base, "")
    every = [c for cs in sets.values() for c in cs]

    s = maxsim(every, index, args.maxsim_top, args.threads)
    for label, reorder in {
        f"maxsim top {args.maxsim_top}, alone": lambda c: list(np.argsort(-c.llm, kind="stable")),
        f"maxsim top {args.maxsim_top}, rrf with first": lambda c: fuse(
            np.arange(len(c.llm)), _ranks(c.llm)
        ),
    }.items():
        got = {lab: hits_of(cs, {c.case.id: reorder(c) for c in cs}) for lab, cs in sets.items()}
        compare(label, rows, got, base, f"{s * 1000:.0f} ms/question")

    qa2 = next(lab for lab in sets if "qa2" in lab)
    judged = sets[qa2][: args.judge_cases]
    s = judge(judged, index, args.judge_top, args.threads)
    few = {qa2: hits_of(judged)}
    for label, reorder in {
        "judge (0.5B yes/no), alone": lambda c: list(np.argsort(-c.llm, kind="stable")),
        "judge (0.5B yes/no), rrf with first": lambda c: fuse(np.arange(len(c.llm)), _ranks(c.llm)),
    }.items():
        got = {qa2: hits_of(judged, {c.case.id: reorder(c) for c in judged})}
        compare(f"{label}, {len(judged)} qa2", rows, got, few, f"{s * 1000:.0f} ms/passage")

    extra, s = hyde_passages([c.case.question for c in every], args.threads)
    written = {c.case.id: e for c, e in zip(every, extra, strict=True)}
    for weight, lexical in ((0.5, False), (1.0, False), (1.0, True)):
        got = {}
        for lab, cs in sets.items():
            ok = []
            for c in cs:
                query = c.case.question + (f" {written[c.case.id]}" if lexical else "")
                found = retrieve(
                    _Mixed(embedder, weight, written[c.case.id]),  # type: ignore[arg-type]
                    index,
                    query,
                    K,
                    RetrievalSettings(),
                )
                ok.append(float(any(has_evidence(h.text, c.case.evidence) for h in found)))
            got[lab] = np.array(ok)
        name = f"hyde w{weight}" + (" + BM25 words" if lexical else "")
        compare(name, rows, got, base, f"{s:.2f} s/question to write")
    index.close()
    body = {"k": K, "threads": args.threads, "rows": rows}
    write_results(args.out, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
