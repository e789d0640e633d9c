"""Contents pages of PDFs lose their entries before chunking (``ingest.pdf_contents``).

Entries repeat headings with page numbers and nothing else; as chunks they outranked the
passages they point at. The real manual is pinned in ``test_convert_pdf.py`` (gnuplot).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest.pdf_contents import strip_contents

CONTENTS = "\n".join(
    [
        "CONTENTS",
        "II Plotting styles 71",  # a part in bold: no leaders
        "Boxes . . . . . . . . . . . . . . . . . 72",
        "Boxplot . . . . . . . . . . . . . . . 74",
        "Linespoints 77",
        "Spiderplot . . . . . . . . . . . . . . 80",
        "Preface......................iii",
        "Newspiderplot . . . . . . . . . . . 80",
    ]
)

BODY = "\n".join(
    [
        "Spider plots are essentially parallel axis plots in which the axes are arranged",
        "radially rather than vertically. See spiderplot (p. 80) and the list below:",
        "Version . . . . . . . . 5",
        "Patchlevel . . . . . . 4",
        "The default is 100 samples; set samples 500 raises it to 500",
        "as described in section 2.3 on page 12",
        "and continued below for the rest of chapter 3",
    ]
)


def test_a_contents_page_loses_its_entries_and_keeps_its_title() -> None:
    (page,) = strip_contents([CONTENTS])
    assert page.split("\n") == ["CONTENTS"]


def test_a_body_page_with_a_few_leaders_is_untouched() -> None:
    # Two leader lines and lines ending in numbers: not a contents page.
    assert strip_contents([BODY]) == [BODY]


def test_each_page_is_judged_alone() -> None:
    out = strip_contents([BODY, CONTENTS, BODY])
    assert out[0] == out[2] == BODY
    assert out[1] == "CONTENTS"


def test_index_entries_with_several_pages_stay() -> None:
    # A back-of-book index ("\\cmidrule . . . 12, 14,") lists pages; its lines end in commas.
    index = "\n".join(
        ["\\cmidrule . . . . . 12, 14,", "15, 17", "\\toprule . . . . . 3, 9,", "22"] * 3
    )
    assert strip_contents([index]) == [index]


def test_a_huge_line_is_no_entry() -> None:
    line = "a " + ". " * 20_000 + "12"
    page = "\n".join([line] * 4)
    assert strip_contents([page]) == [page]


@given(st.lists(st.text(alphabet="ab .12\n", max_size=300), max_size=5))
def test_only_whole_lines_are_dropped_in_order(pages: list[str]) -> None:
    out = strip_contents(pages)
    assert len(out) == len(pages)
    for before, after in zip(pages, out, strict=True):
        lines = iter(before.split("\n"))
        kept = after.split("\n") if after else []
        assert all(any(k == line for line in lines) for k in kept)  # a subsequence of the page
