"""Answer verification: sentences, their support by hand-made passages, what gets cited."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eval.strings import is_dont_know
from ingest.embed import Embedder
from service.settings import VerifySettings
from service.verify import (
    check,
    cited_passages,
    content_words,
    declines,
    example_words,
    split_sentences,
    verify,
)

NO_ANSWER = "I don't know based on the provided documents."
MQA = (
    "Multi-Query Attention (MQA) is a variant of multi-head attention. In MQA the key and value "
    "vectors are shared across all heads, and only the queries are unique per head, which shrinks "
    "the KV cache."
)
KETTLE = (
    "The kettle is covered by a two-year limited warranty from the date of purchase. Keep your "
    "receipt as proof of purchase."
)
ZLIB = "zpipe.c defines CHUNK as 16384 bytes, the buffer size handed to inflate() and deflate()."
PASSAGES = [MQA, KETTLE, ZLIB]


def texts(answer: str) -> list[str]:
    return [s.text for s in split_sentences(answer)]


def test_sentences_lists_and_code_lines() -> None:
    answer = (
        "Keys and values are shared [1]. Only queries differ, e.g. per head.[2] Done!\n"
        "- the first item\n"
        "2) the second item [3]\n"
        "```\n"
        "#define CHUNK 16384\n"
        "```\n"
        "Yes. [1]"
    )
    found = split_sentences(answer)
    assert [s.text for s in found] == [
        "Keys and values are shared [1].",
        "Only queries differ, e.g. per head.[2]",
        "Done!",
        "the first item",
        "the second item [3]",
        "#define CHUNK 16384",
    ]  # the fences and "Yes. [1]" carry no content word
    assert [s.markers for s in found] == [(1,), (2,), (), (), (3,), ()]
    for s in found:
        assert answer[s.start : s.end] == s.text


def test_a_marker_after_the_full_stop_belongs_to_the_sentence_before() -> None:
    assert texts("Keys are shared. [1] Values are shared too. [2][3]") == [
        "Keys are shared. [1]",
        "Values are shared too. [2][3]",
    ]
    assert texts("Version 3.7.0 came out in 2010. It added WAL.") == [
        "Version 3.7.0 came out in 2010.",
        "It added WAL.",
    ]


PIECES = [*"ab Z9.!?[]1-*`#)\n\t\"'", "e.g. ", "[2]", "```\n", "- ", "\u2022 ", "3. ", "\r\n"]
ANSWERS = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)


@given(ANSWERS)
def test_offsets_always_slice_back_to_the_sentence(answer: str) -> None:
    end = 0
    for s in split_sentences(answer):
        assert answer[s.start : s.end] == s.text
        assert end <= s.start < s.end  # in order, not overlapping
        assert s.text == s.text.strip() and content_words(s.text)
        end = s.end


def test_content_words_drop_stopwords_and_fold_forms() -> None:
    assert content_words("The heads share 16,384 [2] queries.") == {
        "head",
        "share",
        "16384",
        "query",
    }


def test_each_sentence_gets_the_passage_that_supports_it(embedder: Embedder) -> None:
    answer = (
        "The key and value vectors are shared across all heads [1]. "
        "The warranty lasts two years from the date of purchase [1]. "
        "Bananas ripen faster in a paper bag."
    )
    v = verify(answer, PASSAGES, embedder, min_support=0.6, no_answer=NO_ANSWER)
    mqa, warranty, bananas = v.sentences
    assert (mqa.passage, mqa.supported) == (1, True) and mqa.support >= 0.8
    assert [(m.n, m.backed) for m in mqa.markers] == [(1, True)]
    # supported by passage 2, but marked [1]: the marker is not backed
    assert (warranty.passage, warranty.supported) == (2, True)
    assert [(m.n, m.backed) for m in warranty.markers] == [(1, False)]
    assert warranty.markers[0].support is not None and warranty.markers[0].support < 0.4
    assert not bananas.supported and bananas.support < 0.4
    assert (v.supported_share, v.verdict, v.action) == (0.667, "partial", "none")
    assert all(answer[s.start : s.end] == s.text for s in v.sentences)


def test_a_marker_naming_no_passage_is_not_backed(embedder: Embedder) -> None:
    v = verify("CHUNK is 16384 bytes [9].", PASSAGES, embedder, min_support=0.6, no_answer="x")
    [m] = v.sentences[0].markers
    assert (m.n, m.support, m.backed) == (9, None, False)
    assert cited_passages("CHUNK is 16384 bytes [9].", 3, v) == [(3, True)]  # [9] is not valid


def test_without_markers_only_the_supporting_passages_are_cited(embedder: Embedder) -> None:
    answer = "The warranty lasts two years. CHUNK is 16384 bytes in zpipe.c."
    v = verify(answer, PASSAGES, embedder, min_support=0.6, no_answer=NO_ANSWER)
    assert cited_passages(answer, 3, v) == [(2, True), (3, True)]
    # an unsupported sentence earns no citation
    odd = "Bananas ripen faster in a paper bag."
    assert (
        cited_passages(odd, 3, verify(odd, PASSAGES, embedder, min_support=0.6, no_answer="x"))
        == []
    )


def test_markers_are_cited_as_written_each_flagged(embedder: Embedder) -> None:
    answer = "The warranty lasts two years [3][2]. CHUNK is 16384 bytes [3]."
    v = verify(answer, PASSAGES, embedder, min_support=0.6, no_answer=NO_ANSWER)
    assert cited_passages(answer, 3, v) == [(3, True), (2, True)]
    wrong = "The warranty lasts two years [1]."
    v = verify(wrong, PASSAGES, embedder, min_support=0.6, no_answer=NO_ANSWER)
    assert cited_passages(wrong, 3, v) == [(1, False)]


@pytest.mark.parametrize(
    "answer", [NO_ANSWER, "I don\u2019t know.", "Sorry, I do not know that [1]."]
)
def test_dont_know_and_ungrounded_answers_cite_nothing(answer: str, embedder: Embedder) -> None:
    assert declines(answer, NO_ANSWER) and is_dont_know(answer)  # the eval reads it the same way
    v = verify(answer, PASSAGES, embedder, min_support=0.6, no_answer=NO_ANSWER)
    assert v.verdict == "declined" and v.sentences == [] and cited_passages(answer, 3, v) == []
    v = verify("CHUNK is 16384 bytes.", [], embedder, min_support=0.6, no_answer=NO_ANSWER)
    assert v.verdict == "ungrounded" and cited_passages("CHUNK is 16384 bytes.", 0, v) == []


def test_an_answer_that_knows_is_not_declining() -> None:
    assert not declines("The kettle has a two-year warranty [2].", NO_ANSWER)


UNSUPPORTED = "Bananas ripen faster in a paper bag. Apples keep longer in the fridge."


def test_refuse_gives_the_templates_dont_know_and_keeps_the_text(embedder: Embedder) -> None:
    refuse = VerifySettings(on_unsupported="refuse")
    text, v = check(UNSUPPORTED, PASSAGES, embedder, refuse, NO_ANSWER)
    assert text == NO_ANSWER and (v.verdict, v.action, v.original) == (
        "unsupported", "refused", UNSUPPORTED,
    )  # fmt: skip
    assert all(UNSUPPORTED[s.start : s.end] == s.text for s in v.sentences)
    assert cited_passages(text, 3, v) == []
    # streamed: the text is out already, so it is flagged; "flag" flags
    for settings, streamed in ((refuse, True), (VerifySettings(), False)):
        text, v = check(UNSUPPORTED, PASSAGES, embedder, settings, NO_ANSWER, streamed=streamed)
        assert text == UNSUPPORTED and (v.action, v.original) == ("flagged", None)


def test_refuse_leaves_a_supported_answer_alone(embedder: Embedder) -> None:
    answer = "The warranty lasts two years [2]. Bananas ripen faster in a paper bag."
    settings = VerifySettings(on_unsupported="refuse")
    text, v = check(answer, PASSAGES, embedder, settings, NO_ANSWER)
    assert text == answer and (v.verdict, v.action) == ("partial", "none")
    # a stricter threshold makes the same answer unsupported
    strict = VerifySettings(on_unsupported="refuse", min_support=0.95)
    assert check(answer, PASSAGES, embedder, strict, NO_ANSWER)[0] == NO_ANSWER


def test_a_wrong_marker_is_fixed_to_the_passage_that_backs_the_sentence(embedder: Embedder) -> None:
    answer = "According to [1], the warranty lasts two years. CHUNK is 16384 bytes [3]."
    text, v = check(answer, PASSAGES, embedder, VerifySettings(), NO_ANSWER)
    assert text == "According to [2], the warranty lasts two years. CHUNK is 16384 bytes [3]."
    assert v.original == answer and v.verdict == "supported"
    first = v.sentences[0].markers[0]
    assert (first.n, first.backed, first.fixed_to) == (1, False, 2)
    assert all(answer[s.start : s.end] == s.text for s in v.sentences)  # offsets: the model's text
    assert cited_passages(text, 3, v) == [(2, True), (3, True)]
    # a sentence that also cites the backing passage loses the wrong marker instead
    both = "The warranty lasts two years [1][2]."
    text, v = check(both, PASSAGES, embedder, VerifySettings(), NO_ANSWER)
    assert text == "The warranty lasts two years [2]." and cited_passages(text, 3, v) == [(2, True)]
    # two wrong markers on one sentence: the first is fixed, the second then dropped
    twice = "The warranty lasts two years [1][3]."
    text, v = check(twice, PASSAGES, embedder, VerifySettings(), NO_ANSWER)
    assert text == "The warranty lasts two years [2]."


def test_markers_stay_as_written_when_streamed_off_or_unsupported(embedder: Embedder) -> None:
    answer = "According to [1], the warranty lasts two years."
    for settings, streamed in (
        (VerifySettings(), True),
        (VerifySettings(fix_markers=False), False),
    ):
        text, v = check(answer, PASSAGES, embedder, settings, NO_ANSWER, streamed=streamed)
        assert text == answer and v.original is None
        assert cited_passages(text, 3, v) == [(1, False)]
    bananas = "According to [1], bananas ripen faster in a paper bag."
    text, v = check(bananas, PASSAGES, embedder, VerifySettings(), NO_ANSWER)
    assert text == bananas and v.sentences[0].markers[0].fixed_to is None


# --- words lent by the few-shot examples -------------------------------------------------------

EXAMPLES = (
    "How long is the warranty on the kettle?",
    "kettle-manual.pdf " + KETTLE,
    "According to [1], the kettle has a two-year limited warranty.",
    "Which payment methods does the shop accept?",
)
RULES = 'Start with "According to [n],".'  # the template's own wording is shown too


def test_words_only_an_example_had_are_lendable() -> None:
    lent = example_words(EXAMPLES, [RULES, "Which models use ALiBi?", "BLOOM uses ALiBi."])
    assert {"kettle", "shop", "warranty", "receipt"} <= lent
    assert not lent & {"according", "alibi", "bloom"}  # the rules and the real passage have them
    assert not lent & {"two"}  # counting words and numbers are evidence of nothing


def test_a_sentence_names_the_lent_words_it_uses(embedder: Embedder) -> None:
    """The issue's leak: "The shop uses ALiBi embeddings" took "shop" from an example."""
    alibi = "BLOOM and MPT use ALiBi embeddings, which add a bias that grows with distance."
    lent = example_words(EXAMPLES, [RULES, "Which models use ALiBi embeddings?", alibi])
    answer = "According to [1], BLOOM and MPT use ALiBi embeddings. The shop uses ALiBi embeddings."
    checked = verify(
        answer, [alibi], embedder, min_support=0.6, no_answer=NO_ANSWER, example_words=lent
    )
    assert [s.borrowed for s in checked.sentences] == [[], ["shop"]]
    # Reported, not judged: support is the score's alone, with the lent word counted against it.
    plain = verify(answer, [alibi], embedder, min_support=0.6, no_answer=NO_ANSWER)
    assert [s.supported for s in checked.sentences] == [s.supported for s in plain.sentences]
    assert not any(s.borrowed for s in plain.sentences)
