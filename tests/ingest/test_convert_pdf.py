"""PDF text quality on real documents: real hyphens kept, page furniture gone, table rows intact.

The structural PDF tests (pages, outline sections, broken files) live in ``test_convert.py``;
these pin what a reader of the extracted text notices first, each with the passage that broke.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest.clean import normalize_space
from ingest.convert import convert_file
from ingest.model import Document
from ingest.settings import IngestSettings


@pytest.fixture(scope="module")
def pdfs(shared_data: Path) -> dict[str, Document]:
    """The short PDFs, converted once per module (the 311-page gnuplot manual has its own test)."""
    paths = {
        "attention": shared_data / "papers" / "attention-is-all-you-need.pdf",
        "bert": shared_data / "papers" / "bert-pre-training.pdf",
        "vit": shared_data / "papers" / "vit-an-image-is-worth-16x16-words.pdf",
        "booktabs": shared_data / "qa2" / "docs" / "booktabs.pdf",
        "tugboat": shared_data / "qa2" / "docs" / "tugboat-author-macros.pdf",
    }
    return {name: convert_file(path) for name, path in paths.items()}


def test_line_end_hyphen_of_a_compound_is_kept(pdfs: dict[str, Document]) -> None:
    # pypdf gives "WMT 2014 English-\nto-German translation task": a real hyphen at a line end.
    att = normalize_space(pdfs["attention"].text)
    assert "achieves 28.4 BLEU on the WMT 2014 English-to-German translation task" in att
    assert "Englishto" not in att
    assert "sequence-aligned RNNs" in att  # both halves are words of the paper: a compound
    bert = pdfs["bert"].text
    # BERT spells these hyphenated throughout; line ends used to glue them ("pretrained").
    assert bert.count("fine-tuning") > 50
    assert "finetuning" not in bert and "finetuned" not in bert
    assert "pretrained" not in bert and "pretrains" not in bert
    assert not re.search(r"selfattention|taskspecific|featurebased", pdfs["bert"].text)


def test_syllable_breaks_are_joined(pdfs: dict[str, Document]) -> None:
    bert = normalize_space(pdfs["bert"].text)
    assert "language representation model called BERT" in bert  # "representa-\ntion"
    assert "the MLM objective enables" in bert  # "ob-\njective"
    att = normalize_space(pdfs["attention"].text)
    assert "dominant sequence transduction models" in att
    assert "transduc-tion" not in att


def test_alternating_running_headers_and_footers_dropped(pdfs: dict[str, Document]) -> None:
    # TUGboat: odd pages "TUGboat, Volume 0 (9999), No. 0 draft: ... 901" over the title as
    # footer; even pages "902 draft: ... TUGboat, ..." over the author as footer.
    doc = pdfs["tugboat"]
    assert "draft: January 16, 2023" not in doc.text
    assert doc.text.startswith("The LATEX 2ε TUGboat macros\nRobin Fairbairns & TUGboat editors")
    assert doc.text.count("The LATEX 2ε TUGboat macros") == 1  # the title on page one stays
    assert doc.text.count("Robin Fairbairns & TUGboat editors") == 2  # byline and signature
    vit = pdfs["vit"].text
    assert "Published as a conference paper at ICLR 2021" not in vit


def _lines(doc: Document) -> set[str]:
    return set(doc.text.split("\n"))


def test_table_rows_stay_rows(pdfs: dict[str, Document]) -> None:
    att = _lines(pdfs["attention"])
    assert {  # Table 2 and the last row of Table 3, one row per line
        "ConvS2S [9] 25.16 40.46 9.6 · 1018 1.5 · 1020",
        "GNMT + RL Ensemble [38] 26.30 41.16 1.8 · 1020 1.1 · 1021",
        "Transformer (big) 28.4 41.8 2.3 · 1019",
        "big 6 1024 4096 16 0.3 300K 4.33 26.4 213",
    } <= att
    booktabs = _lines(pdfs["booktabs"])
    assert {"Gnat per gram 13.65", "Gnu stuffed 92.50", "Armadillo frozen 8.99"} <= booktabs
    assert "Gnu & stuffed & 92.50 \\\\" in booktabs  # the LaTeX source of that table, too


_GNUPLOT_HEADER = re.compile(
    r"^(?:\d+ )?gnuplot 5\.4(?: \d+)?$|CONTENTS gnuplot|gnuplot 5\.4 CONTENTS"
)


@pytest.mark.slow
def test_gnuplot_manual_running_headers_dropped(shared_data: Path) -> None:
    # 311 pages; headers alternate "gnuplot 5.4 23" / "24 gnuplot 5.4" and the table of
    # contents adds "CONTENTS". None of them is on half the pages, so all used to stay.
    doc = convert_file(shared_data / "qa2" / "docs" / "gnuplot-5.4-manual.pdf")
    assert len(doc.pages) == 311
    headers = [line for line in doc.text.split("\n") if _GNUPLOT_HEADER.search(line)]
    assert headers == ["gnuplot 5.4"]  # the title on page one, not a header
    assert doc.text.startswith("gnuplot 5.4\nAn Interactive Plotting Program")
    assert doc.text.count("Syntax:") > 100  # repeated body lines near the top stay
    # Its 18 contents pages (644 entries) are gone; the sections they list are not.
    lines = doc.text.split("\n")
    assert not [line for line in lines if re.search(r"(?:\. ){3,}\.? ?\d+$", line)]
    assert "Spiderplot . . ." not in doc.text and "Linespoints 77" not in lines
    assert "Spider plots are essentially parallel axis plots" in normalize_space(doc.text)
    assert any(s.title == "Spiderplot" for s in doc.sections)
    # The per-document text limit's default leaves this manual (842,594 characters) room.
    assert 2 * len(doc.text) < IngestSettings().max_text_chars
