"""Metrics: retrieval and judge-free answer scores on hand-made observations, the judge for real.

The judge tests run ragas against a real ``python -m llama_cpp.server`` serving the packaged Gemma
270M: its scores mean nothing, so they check only that each score is produced or its failure
counted. A dead judge and a judge that never answers must cost failures, not exceptions or hangs.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eval import strings
from eval.dataset import Case
from eval.judge import MAX_ERRORS
from eval.metrics import (
    METRICS,
    JudgeConfig,
    Observation,
    answer_metrics,
    judge_metrics,
    parse_judge,
    retrieval_metrics,
)
from ingest.embed import Embedder
from tests.conftest import base_gguf, free_port, running_llama_server

GT = "Flash Attention uses tiling and kernel fusion."
CASE = Case(
    id="flash",
    question="Which two techniques does Flash Attention use to minimize memory reads and writes?",
    ground_truth=GT,
    evidence=("tiling and kernel fusion",),
)
ON_TOPIC = "Flash Attention relies on tiling and\n  kernel fusion to cut redundant memory traffic."
OFF_TOPIC = "The zlib library compresses streams with the deflate algorithm."
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:instructor.*")
JUDGED = {
    "answer_accuracy",
    "faithfulness",
    "answer_relevancy",
    "llm_context_precision",
    "llm_context_recall",
}


def obs(
    answer: str = GT,
    contexts: tuple[str, ...] = (ON_TOPIC,),
    cited: tuple[int, ...] = (),
    case: Case = CASE,
) -> Observation:
    return Observation(case=case, answer=answer, contexts=contexts, cited=cited)


def fake_embed(texts: list[str]) -> np.ndarray:
    """Unit vectors, one per text: enough for tests that do not look at semantic similarity."""
    rows = np.ones((len(texts), 4))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


# --- retrieval ---------------------------------------------------------------------------------


def test_hit_at_rank_two_gives_mrr_one_half() -> None:
    assert retrieval_metrics(obs(contexts=(OFF_TOPIC, ON_TOPIC)), k=5) == {
        "hit_rate": 1.0,
        "mrr": 0.5,
    }


def test_evidence_matches_across_line_breaks_and_runs_of_spaces() -> None:
    case = dataclasses.replace(CASE, evidence=("tiling  and kernel\tfusion",))
    assert retrieval_metrics(obs(contexts=(ON_TOPIC,), case=case), k=1)["hit_rate"] == 1.0


def test_evidence_matches_whatever_the_case_as_the_datasets_define_it() -> None:
    # qa2/README.md: matched after collapsing whitespace and lower-casing
    case = dataclasses.replace(CASE, evidence=("Tiling and KERNEL fusion",))
    assert retrieval_metrics(obs(contexts=(ON_TOPIC,), case=case), k=1)["hit_rate"] == 1.0


def test_only_the_top_k_count() -> None:
    assert retrieval_metrics(obs(contexts=(OFF_TOPIC, ON_TOPIC)), k=1) == {
        "hit_rate": 0.0,
        "mrr": 0.0,
    }


def test_a_case_without_evidence_is_not_scored() -> None:
    assert retrieval_metrics(obs(case=dataclasses.replace(CASE, evidence=())), k=3) == {}
    with pytest.raises(ValueError, match="k must be"):
        retrieval_metrics(obs(), k=0)


# --- answers without a judge -------------------------------------------------------------------


def test_exact_answer_scores_one_and_unrelated_answer_low() -> None:
    exact, unrelated = answer_metrics([obs(GT), obs(OFF_TOPIC)], fake_embed)
    assert exact["string_similarity"] == pytest.approx(1.0)
    assert exact["rouge_l"] == pytest.approx(1.0)
    assert unrelated["string_similarity"] < 0.4
    assert unrelated["rouge_l"] < 0.2


def test_rouge_l_ignores_case_and_punctuation_and_rewards_order() -> None:
    (row,) = answer_metrics([obs("flash attention USES tiling, and kernel fusion!")], fake_embed)
    assert row["rouge_l"] == pytest.approx(1.0)
    (row,) = answer_metrics([obs("fusion kernel and tiling uses attention flash")], fake_embed)
    assert row["rouge_l"] < 0.4


def dp_levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def dp_lcs(a: str, b: str) -> int:
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if ca == cb else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


@given(st.text(alphabet="abcd ", max_size=70), st.text(alphabet="abcd ", max_size=70))
def test_bit_parallel_string_measures_match_dynamic_programming(a: str, b: str) -> None:
    assert strings.levenshtein(a, b) == dp_levenshtein(a, b)
    assert strings._lcs(list(a), list(b)) == dp_lcs(a, b)


def test_semantic_similarity_with_the_real_encoder(embedder: Embedder) -> None:
    calls: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return embedder.encode(texts)

    paraphrase = "It combines tiling with kernel fusion to avoid redundant memory access."
    rows = answer_metrics([obs(paraphrase), obs(OFF_TOPIC), obs(GT)], embed)
    assert calls == [6]  # answers and ground truths in one batch
    para, off, exact = (r["semantic_similarity"] for r in rows)
    assert exact == pytest.approx(1.0, abs=1e-3)
    assert para > off + 0.2


def test_citation_support() -> None:
    contexts = (OFF_TOPIC, ON_TOPIC)
    rows = answer_metrics(
        [
            obs(contexts=contexts, cited=(2,)),  # cites the passage with the evidence
            obs(contexts=contexts, cited=(1, 7)),  # cites the wrong one and one that is not there
            obs(contexts=contexts),  # cites nothing
            obs(contexts=contexts, cited=(2,), case=dataclasses.replace(CASE, evidence=())),
        ],
        fake_embed,
    )
    assert [r.get("citation_support") for r in rows] == [1.0, 0.0, None, None]


def test_context_precision_and_recall_against_reference_contexts() -> None:
    ref = "Flash Attention minimizes memory reads and writes with tiling and kernel fusion."
    case = dataclasses.replace(CASE, reference_contexts=(ref,))
    rows = answer_metrics(
        [
            obs(contexts=(OFF_TOPIC, ref), case=case),  # the reference, ranked second
            obs(contexts=(ref + " It is exact.",), case=case),  # a near copy, ranked first
            obs(contexts=(OFF_TOPIC,), case=case),  # nothing relevant
            obs(contexts=(), case=case),  # nothing retrieved
            obs(contexts=(ref,)),  # the case has no reference contexts
        ],
        fake_embed,
    )
    precision = [r["context_precision"] for r in rows[:4]]
    recall = [r["context_recall"] for r in rows[:4]]
    assert precision == pytest.approx([0.5, 1.0, 0.0, 0.0])
    assert recall == pytest.approx([1.0, 1.0, 0.0, 0.0])
    assert "context_precision" not in rows[4] and "context_recall" not in rows[4]


def test_dont_know() -> None:
    answers = ["I don't know.", "I do not know that.", "I don\u2019t know", "I know: tiling."]
    rows = answer_metrics([obs(a) for a in answers], fake_embed)
    assert [r["dont_know"] for r in rows] == [1.0, 1.0, 1.0, 0.0]


def test_metrics_table_covers_every_key() -> None:
    case = dataclasses.replace(CASE, reference_contexts=(ON_TOPIC,))
    o = dataclasses.replace(
        obs(contexts=(ON_TOPIC,), cited=(1,), case=case), supported=True, borrowed=frozenset()
    )
    unanswerable = obs(case=dataclasses.replace(CASE, extra={"kind": "unanswerable"}))
    rows = answer_metrics([o, unanswerable], fake_embed)
    produced = set(retrieval_metrics(o, 3)) | set(rows[0]) | set(rows[1])
    judged = {n for n, info in METRICS.items() if info.needs_judge}
    assert judged == JUDGED
    assert produced | judged == set(METRICS)
    assert all(info.name == name and info.description for name, info in METRICS.items())
    assert answer_metrics([], fake_embed) == []


# --- the judge ---------------------------------------------------------------------------------


def test_parse_judge() -> None:
    assert parse_judge("http://127.0.0.1:8001/v1/gemma") == JudgeConfig(
        "http://127.0.0.1:8001/v1", "gemma"
    )
    vllm = parse_judge("https://gpu:8000/v1/Qwen/Qwen2.5-7B-Instruct/")
    assert (vllm.base_url, vllm.model) == ("https://gpu:8000/v1", "Qwen/Qwen2.5-7B-Instruct")
    assert parse_judge("http://judge:9000/phi").base_url == "http://judge:9000"
    for bad in ("gemma", "http://127.0.0.1:8001", "http://127.0.0.1:8001/v1/", "ftp://h/v1/m"):
        with pytest.raises(ValueError, match="--judge"):
            parse_judge(bad)


def test_dead_judge_counts_failures_quickly() -> None:
    judge = parse_judge(f"http://127.0.0.1:{free_port()}/v1/gemma")
    observations = [obs(), obs(OFF_TOPIC), obs("", contexts=())]  # the last has nothing to judge
    start = time.monotonic()
    rows, stats = judge_metrics(observations, judge, fake_embed)
    assert time.monotonic() - start < 30
    assert rows == [{}, {}, {}]
    assert stats.failures == 10 and stats.timeouts == stats.unparsable == 0
    assert stats.calls <= 3  # the breaker stops asking a judge that is down
    assert "Connection" in stats.errors[0] and "not requested" in stats.errors[-1]


def test_silent_judge_times_out_within_bounds() -> None:
    """A server that accepts connections and never answers: every wait ends at the timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        judge = JudgeConfig(f"http://127.0.0.1:{port}/v1", "gemma", timeout_s=0.5)
        start = time.monotonic()
        rows, stats = judge_metrics([obs(), obs()], judge, fake_embed)
        assert time.monotonic() - start < 10
    assert rows == [{}, {}]
    assert (stats.failures, stats.timeouts) == (10, 3)


def test_a_judge_ragas_cannot_set_up_fails_every_score() -> None:
    judge = JudgeConfig(f"http://127.0.0.1:{free_port()}/v1", model="")  # llm_factory refuses it
    rows, stats = judge_metrics([obs(), obs()], judge, fake_embed)
    assert rows == [{}, {}]
    assert stats.failures == 10 and stats.calls == 0
    assert stats.errors[0].startswith("judge setup failed")


# What a well-behaved judge answers, by the response model instructor names in its prompt.
CANNED = {
    "AccuracyRating": {"rating": 4},
    "StatementGeneratorOutput": {"statements": ["It uses tiling.", "It uses kernel fusion."]},
    "NLIStatementOutput": {
        "statements": [
            {"statement": "It uses tiling.", "reason": "stated", "verdict": 1},
            {"statement": "It uses kernel fusion.", "reason": "not stated", "verdict": 0},
        ]
    },
    "AnswerRelevanceOutput": {"question": CASE.question, "noncommittal": 0},
    "ContextPrecisionOutput": {"reason": "useful", "verdict": 1},
    "ContextRecallOutput": {
        "classifications": [{"statement": GT, "reason": "in context", "attributed": 1}]
    },
}


class ScriptedJudge(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that answers each ragas prompt with valid JSON."""

    requests: ClassVar[list[dict]] = []  # every request body, in order

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.requests.append(json.loads(body))
        name = next(n for n in CANNED if n in body)
        out = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "scripted",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": json.dumps(CANNED[name])},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


def test_scores_from_a_judge_that_answers_well() -> None:
    """The success path through ragas' real scoring code, with a scripted judge on loopback."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        judge = JudgeConfig(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", strictness=2)
        rows, stats = judge_metrics([obs(contexts=(ON_TOPIC, OFF_TOPIC))], judge, fake_embed)
    finally:
        server.shutdown()
        server.server_close()
    assert (stats.failures, stats.errors) == (0, [])
    # answer accuracy's two raters, faithfulness 2, relevancy 2, precision per passage, recall
    assert stats.calls == 2 + 2 + 2 + 2 + 1
    assert rows[0] == pytest.approx(
        {
            "answer_accuracy": 1.0,
            "faithfulness": 0.5,
            "answer_relevancy": 1.0,
            "llm_context_precision": 1.0,
            "llm_context_recall": 1.0,
        }
    )


def test_judge_asks_only_for_its_metrics_and_sends_the_schema_when_told() -> None:
    """``eval.judge_metrics`` bounds what a run asks; ``json_schema`` puts each response model's
    schema in response_format (llama.cpp's servers build their grammar from it)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/v1"
        sent = []
        for schema in (False, True):
            ScriptedJudge.requests.clear()
            judge = JudgeConfig(base, "m", json_schema=schema, metrics=("answer_accuracy",))
            rows, stats = judge_metrics([obs(contexts=(ON_TOPIC,))], judge, fake_embed)
            assert rows == [{"answer_accuracy": 1.0}] and stats.calls == 2
            sent.append([r["response_format"] for r in ScriptedJudge.requests])
    finally:
        server.shutdown()
        server.server_close()
    assert sent[0] == [{"type": "json_object"}] * 2
    assert [f["type"] for f in sent[1]] == ["json_object"] * 2
    assert all(f["schema"]["properties"]["rating"]["enum"] == [0, 2, 4] for f in sent[1])


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama_cpp.server with Gemma 270M and room for ragas' prompts (n_ctx 2048)."""
    log = tmp_path_factory.mktemp("judge-server") / "server.log"
    with running_llama_server(base_gguf(), log, n_ctx=2048) as base:
        yield base


@pytest.mark.slow
@pytest.mark.integration
def test_real_judge_scores_or_counts_every_metric(judge_server: str, embedder: Embedder) -> None:
    judge = dataclasses.replace(
        parse_judge(f"{judge_server}/gemma"), max_tokens=64, strictness=1, timeout_s=60
    )
    observations = [obs(GT, cited=(1,)), obs(OFF_TOPIC, contexts=(OFF_TOPIC,))]
    rows, stats = judge_metrics(observations, judge, embedder.encode)
    print(rows, stats)  # shown with -rA or on failure: what the tiny judge managed
    assert len(rows) == 2
    for row in rows:
        assert set(row) <= JUDGED
        assert all(0.0 <= v <= 1.0 for v in row.values())
    # Each of the 10 scores is either there or counted as failed, with a message.
    assert sum(len(r) for r in rows) + stats.failures == 10
    assert stats.failures == 0 or stats.errors
    assert len(stats.errors) <= min(stats.failures, MAX_ERRORS)
    assert stats.timeouts <= stats.failures and stats.unparsable <= stats.failures
    # One request per score at least (unless the breaker stopped a timing-out judge), two at most
    # for answer accuracy (two raters) and faithfulness (statements, then verdicts), one for the
    # others with one passage each.
    assert stats.calls <= 2 * (2 + 2 + 1 + 1 + 1)
    assert stats.calls >= 10 or stats.timeouts
