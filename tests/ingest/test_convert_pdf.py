"""PDF text quality on real documents: real hyphens kept, syllable breaks joined.

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


@pytest.fixture(scope="module")
def pdfs(shared_data: Path) -> dict[str, Document]:
    """The PDFs, converted once per module: extraction is the slow part."""
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
