"""Scores for one answered question: retrieval, answer without a judge, answer with a judge model.

This is the only module that imports ragas (lazily, so the CLI starts fast). Three tiers:

- ``retrieval_metrics``: deterministic hit rate@k and MRR from the case's ``evidence`` strings.
- ``answer_metrics``: always available. The correctness metrics the decisions rest on (key facts,
  citation precision, "I don't know" on unanswerable cases, the share of answers supported),
  then ragas' non-LLM metrics (string similarity, non-LLM context precision/recall), ROUGE-L,
  semantic similarity from our own encoder, a citation check and a don't-know flag. ``rapidfuzz`` and ``rouge_score`` are not installed, so the Levenshtein distance
  ragas' string metrics run on, and ROUGE-L, come from ``eval.strings``.
- ``judge_metrics``: ragas' LLM metrics against any OpenAI-compatible server (``--judge``). A judge
  fails often (a small model rarely emits the JSON ragas expects), so every failure is counted in
  ``JudgeStats`` and the score left out; nothing raises and nothing is silently dropped.
  ``eval.judge`` runs the calls; the ragas metrics are built here.

A metric a case cannot support (no evidence, no reference contexts, nothing cited) is left out of
that case's dict rather than scored 0, so averages are taken over the cases that measure it.

Semantic similarity is a secondary column, never a default that decides: it rewards sounding like
the ground truth, and a bullet list of the question's terms outscores a correct sentence
(``bench/metric_agreement.py`` measures it on dev and qa2 against hand labels). Key facts ranks
answers the way reading them does, and is the default primary metric.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, Literal

import numpy as np

from eval.dataset import Case
from eval.judge import Job, open_client, run_jobs, run_sync
from eval.judge import JudgeConfig as JudgeConfig  # re-exported: callers use eval.metrics
from eval.judge import JudgeStats as JudgeStats
from eval.judge import parse_judge as parse_judge
from eval.strings import has_evidence, is_dont_know, key_fact_recall, rouge_l, string_similarity

Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Observation:
    """One case as the system answered it: what scoring needs, nothing about how it was made."""

    case: Case
    answer: str
    contexts: tuple[str, ...]  # retrieved passage texts, best first (what the model was shown)
    cited: tuple[int, ...] = ()  # 1-based indices into ``contexts`` that the answer cites
    supported: bool | None = None  # every sentence verified against the passages; None: unknown
    borrowed: frozenset[str] | None = None  # words only the examples had; None: no examples shown


@dataclass(frozen=True)
class MetricInfo:
    name: str
    description: str
    higher_is_better: bool = True
    needs_judge: bool = False


_TABLE = (  # name, higher is better, needs a judge, what it measures
    ("key_facts", True, False, "answer has half the ground truth's content words (answerable)"),
    ("key_fact_recall", True, False, "share of the ground truth's content words in the answer"),
    ("dont_know_unanswerable", True, False, "says it does not know on an unanswerable case"),
    (
        "citation_precision",
        True,
        False,
        "share of [n]-cited passages containing an evidence string",
    ),
    ("supported", True, False, "every sentence of the answer is supported by the passages"),
    ("example_leak", False, False, "the answer has words only the few-shot examples contain"),
    ("hit_rate", True, False, "a top-k passage contains an evidence string"),
    ("mrr", True, False, "1/rank of the first top-k passage containing evidence"),
    ("string_similarity", True, False, "1 - normalized Levenshtein distance to the ground truth"),
    ("rouge_l", True, False, "ROUGE-L F-measure against the ground truth (no stemming)"),
    ("semantic_similarity", True, False, "cosine of answer and ground-truth embeddings"),
    ("citation_support", True, False, "a cited passage contains an evidence string"),
    ("context_precision", True, False, "ranked share of passages matching a reference context"),
    ("context_recall", True, False, "share of reference contexts matched by a passage"),
    ("dont_know", False, False, "the answer says it does not know"),
    ("answer_accuracy", True, True, "judge's rating of the answer against the ground truth"),
    ("faithfulness", True, True, "share of answer claims the passages support"),
    ("answer_relevancy", True, True, "questions generated from the answer match the question"),
    ("llm_context_precision", True, True, "ranked share of passages useful for the ground truth"),
    ("llm_context_recall", True, True, "share of ground-truth claims the passages support"),
)
METRICS: dict[str, MetricInfo] = {n: MetricInfo(n, d, hib, nj) for n, hib, nj, d in _TABLE}

# --- retrieval ---------------------------------------------------------------------------------


def retrieval_metrics(obs: Observation, k: int) -> dict[str, float]:
    """Hit rate@k and MRR@k; ``{}`` for a case without evidence, which cannot be scored."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not any(e.strip() for e in obs.case.evidence):
        return {}
    for rank, passage in enumerate(obs.contexts[:k], 1):
        if has_evidence(passage, obs.case.evidence):
            return {"hit_rate": 1.0, "mrr": 1.0 / rank}
    return {"hit_rate": 0.0, "mrr": 0.0}


# --- answers without a judge -------------------------------------------------------------------


def correctness_metrics(obs: Observation) -> dict[str, float]:
    """Whether the answer is right, by rules a reader can check; each only where the case has it.

    Key facts count on answerable cases (an "I don't know" there recalls nothing); on an
    unanswerable case the right answer is to decline. Citation precision counts the passages an
    answer cites with [n] (a number past the passages counts as a wrong citation). An example
    leak is an answer using words that only the prompt's few-shot examples contained.
    """
    case, row = obs.case, {}
    if case.unanswerable:
        row["dont_know_unanswerable"] = 1.0 if is_dont_know(obs.answer) else 0.0
    elif (recall := key_fact_recall(obs.answer, case.ground_truth)) is not None:
        row["key_fact_recall"] = recall
        row["key_facts"] = 1.0 if recall >= 0.5 else 0.0
    cited = dict.fromkeys(obs.cited)
    if cited and any(e.strip() for e in case.evidence):
        n = len(obs.contexts)
        right = sum(1 <= i <= n and has_evidence(obs.contexts[i - 1], case.evidence) for i in cited)
        row["citation_precision"] = right / len(cited)
    if obs.supported is not None:
        row["supported"] = 1.0 if obs.supported else 0.0
    if obs.borrowed is not None:
        row["example_leak"] = 1.0 if obs.borrowed else 0.0
    return row


def _citation_support(obs: Observation) -> float | None:
    evidence = obs.case.evidence
    if not any(e.strip() for e in evidence) or not obs.cited:
        return None
    cited = [obs.contexts[i - 1] for i in obs.cited if 1 <= i <= len(obs.contexts)]
    return 1.0 if any(has_evidence(p, evidence) for p in cited) else 0.0


class _Levenshtein:
    """Stands in for ``rapidfuzz.distance.Levenshtein`` inside ragas' string metrics."""

    @staticmethod
    def normalized_distance(reference: str, response: str) -> float:
        return 1.0 - string_similarity(reference, response)


@cache
def _ragas_non_llm() -> tuple[Any, Any, Any, Any]:
    """Ragas' string similarity and non-LLM context precision/recall, on our Levenshtein.

    These classes live only in the legacy ``ragas.metrics`` namespace (``collections`` has no
    non-LLM context metrics) and that import warns; the warning is noise for our users.
    """
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # no usage analytics from eval runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ragas import SingleTurnSample
        from ragas.metrics import (
            DistanceMeasure,
            NonLLMContextPrecisionWithReference,
            NonLLMContextRecall,
            NonLLMStringSimilarity,
        )

    @dataclass
    class Similarity(NonLLMStringSimilarity):  # type: ignore[misc]
        def __post_init__(self) -> None:  # the parent's imports rapidfuzz
            self.distance_measure_map = {DistanceMeasure.LEVENSHTEIN: _Levenshtein}

    precision = NonLLMContextPrecisionWithReference(distance_measure=Similarity())
    recall = NonLLMContextRecall(_distance_measure=Similarity())
    return SingleTurnSample, Similarity(), precision, recall


async def _non_llm_rows(observations: Sequence[Observation]) -> list[dict[str, float]]:
    sample, similarity, precision, recall = _ragas_non_llm()
    rows: list[dict[str, float]] = []
    for obs in observations:
        pair = sample(reference=obs.case.ground_truth, response=obs.answer)
        row = {"string_similarity": float(await similarity.single_turn_ascore(pair))}
        refs = [r for r in obs.case.reference_contexts if r.strip()]
        if refs and obs.contexts:
            ctx = sample(retrieved_contexts=list(obs.contexts), reference_contexts=refs)
            row["context_precision"] = float(await precision.single_turn_ascore(ctx))
            row["context_recall"] = float(await recall.single_turn_ascore(ctx))
        elif refs:  # nothing retrieved: nothing relevant retrieved (ragas would fail on max([]))
            row["context_precision"] = row["context_recall"] = 0.0
        rows.append(row)
    return rows


def answer_metrics(observations: Sequence[Observation], embed: Embed) -> list[dict[str, float]]:
    """Judge-free scores per observation; the answers and ground truths are embedded in one call."""
    if not observations:
        return []
    rows = run_sync(_non_llm_rows(observations))
    n = len(observations)
    texts = [o.answer for o in observations] + [o.case.ground_truth for o in observations]
    vectors = np.asarray(embed(texts), dtype=np.float64)
    cosines = np.einsum("ij,ij->i", vectors[:n], vectors[n:])  # rows are L2-normalized
    for obs, row, cosine in zip(observations, rows, cosines, strict=True):
        row.update(correctness_metrics(obs))
        row["rouge_l"] = rouge_l(obs.case.ground_truth, obs.answer)
        row["semantic_similarity"] = float(cosine)
        support = _citation_support(obs)
        if support is not None:
            row["citation_support"] = support
        row["dont_know"] = 1.0 if is_dont_know(obs.answer) else 0.0
    return rows


# --- answers with a judge ----------------------------------------------------------------------


def _ragas_judge(client: Any, judge: JudgeConfig, embed: Embed) -> dict[str, Any]:
    """Ragas' collections metrics on ``client``, with our encoder for answer relevancy.

    Instructor asks for a JSON object (``llm_factory``'s JSON mode; llama.cpp enforces JSON with a
    grammar). With ``judge.json_schema`` the request also carries the response model's schema
    (instructor's JSON_SCHEMA mode, the ``response_format`` llama.cpp's server builds a grammar
    from), so the output has the fields and types ragas parses. ``max_retries=1`` is instructor's
    *attempt* count, and answer accuracy's own retry loop is set to one try: no re-asks.
    """
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    from ragas.embeddings.base import BaseRagasEmbedding
    from ragas.llms import llm_factory
    from ragas.llms.base import InstructorBaseRagasLLM, InstructorLLM, InstructorModelArgs
    from ragas.metrics import collections as rm

    class Encoder(BaseRagasEmbedding):
        """Our sentence encoder (already on this machine) in ragas' embedding interface."""

        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return self.embed_texts([text])[0]

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return self.embed_texts([text])[0]

        def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return [[float(x) for x in row] for row in np.asarray(embed(list(texts)))]

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return self.embed_texts(texts)

    args: dict[str, Any] = {"max_tokens": judge.max_tokens, "max_retries": 1}
    llm: InstructorBaseRagasLLM
    if judge.json_schema:
        import instructor

        patched = instructor.from_openai(client, mode=instructor.Mode.JSON_SCHEMA)
        llm = InstructorLLM(patched, judge.model, "openai", InstructorModelArgs(), **args)
    else:
        llm = llm_factory(judge.model, client=client, **args)
    relevancy = rm.AnswerRelevancy(llm=llm, embeddings=Encoder(), strictness=judge.strictness)
    return {
        "answer_accuracy": _strict_answer_accuracy(rm.AnswerAccuracy)(llm=llm, max_retries=1),
        "faithfulness": rm.Faithfulness(llm=llm),
        "answer_relevancy": relevancy,
        "llm_context_precision": rm.ContextPrecisionWithReference(llm=llm),
        "llm_context_recall": rm.ContextRecall(llm=llm),
    }


def _strict_answer_accuracy(base: type) -> type:
    """Ragas' answer accuracy with its failures raised, and the rating constrained to 0, 2, 4.

    Ragas' version catches every error of its two raters and returns NaN, so an unreachable
    judge would look like a judge that gave nothing (no breaker, no timeout count); and its
    response model takes any integer, so a schema-constrained judge could still answer 3.
    """
    from pydantic import BaseModel, Field
    from ragas.metrics.collections.answer_accuracy.util import AnswerAccuracyInput

    class AccuracyRating(BaseModel):
        rating: Literal[0, 2, 4] = Field(..., description="Accuracy rating (0, 2, or 4)")

    class StrictAnswerAccuracy(base):  # type: ignore[misc, valid-type]
        async def _get_judge_rating(
            self, prompt: Any, query: str, user_answer: str, reference_answer: str
        ) -> float:
            data = AnswerAccuracyInput(
                query=query, user_answer=user_answer, reference_answer=reference_answer
            )
            result = await self.llm.agenerate(prompt.to_string(data), AccuracyRating)
            return float(result.rating)

    return StrictAnswerAccuracy


def _judge_inputs(obs: Observation, judge: JudgeConfig) -> list[tuple[str, int, dict[str, Any]]]:
    """(metric, most requests it makes, its arguments) for each judge metric ``obs`` can feed.

    A metric with an empty input (no passages, a blank answer) is not asked for: ragas would
    reject it, and that is no failure of the judge. The request count bounds the score's deadline.
    """
    q, answer, ctx = obs.case.question, obs.answer.strip(), list(obs.contexts)
    ref: dict[str, Any] = {"user_input": q, "reference": obs.case.ground_truth}
    ref["retrieved_contexts"] = ctx
    answered: dict[str, Any] = {"user_input": q, "response": answer}
    candidates = [
        ("answer_accuracy", 2, answered | {"reference": obs.case.ground_truth}),  # two raters
        ("faithfulness", 2, answered | {"retrieved_contexts": ctx}),  # statements, then verdicts
        ("answer_relevancy", judge.strictness, answered),  # one question per request
        ("llm_context_precision", len(ctx), ref),  # one verdict per passage
        ("llm_context_recall", 1, ref),
    ]
    return [c for c in candidates if c[0] in judge.metrics and all(c[2].values())]


def judge_metrics(
    observations: Sequence[Observation], judge: JudgeConfig, embed: Embed
) -> tuple[list[dict[str, float]], JudgeStats]:
    """Ragas' judge metrics per observation, ``judge.concurrency`` scores at once; failures
    counted, not raised.

    A metric whose inputs are missing (no passages, an empty answer) is left out without counting
    as a failure: the judge was never asked.
    """
    stats = JudgeStats()
    wanted = [_judge_inputs(obs, judge) for obs in observations]

    async def judge_all() -> list[dict[str, float]]:
        client = open_client(judge, stats)
        try:
            metrics = _ragas_judge(client, judge, embed)
            jobs = [
                [Job(n, obs.case.id, req, partial(metrics[n].ascore, **kw)) for n, req, kw in row]
                for obs, row in zip(observations, wanted, strict=True)
            ]
            return await run_jobs(jobs, judge, stats)
        finally:
            await client.close()

    if not any(wanted):
        return [{} for _ in observations], stats
    try:
        return run_sync(judge_all()), stats
    except Exception as e:  # ragas or the client could not be set up: no score was produced
        stats.failures += sum(len(row) for row in wanted) - 1
        stats.fail(f"judge setup failed: {type(e).__name__}: {e}")
        return [{} for _ in observations], stats
