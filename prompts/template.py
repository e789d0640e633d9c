"""The data a prompt template is made of, and the schema its YAML file must satisfy.

Kept apart from loading (``registry``) and rendering (``render``) so both can share these types
without importing each other. The dataclasses are what callers hold; the pydantic models exist
only to turn a hand-written file into a precise error message (path, field, what is wrong).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CITATION = re.compile(r"\[(\d+)\]")
TEMPLATE_ID = r"^[a-z0-9][a-z0-9._-]*$"


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk as the prompt shows it; ``ref`` carries the caller's own chunk."""

    text: str
    source: str
    page: int | None = None
    heading: str = ""
    score: float = 0.0
    ref: object = None


@dataclass(frozen=True)
class Example:
    """A worked few-shot example: question, its passages and the cited answer to imitate."""

    question: str
    passages: tuple[Passage, ...]
    answer: str


@dataclass(frozen=True)
class ContextLayout:
    """How one passage is shown: a header line, then its text between two fence markers.

    ``header`` is a ``str.format`` pattern over ``n``, ``source``, ``page`` and ``heading``, where
    ``page`` and ``heading`` are the ``page`` / ``heading`` patterns filled in (or "" when unknown).
    """

    header: str = "[{n}] (source: {source}{page}{heading})"
    page: str = ", page {page}"
    heading: str = ""
    open: str = "<passage>"
    close: str = "</passage>"
    separator: str = "\n\n"
    empty: str = "(no passages)"
    truncated: str = " […]"


@dataclass(frozen=True)
class Layout:
    """The labels of the prompt's skeleton, shared by the completion and chat renderings."""

    passages: str = "Passages:"
    question: str = "Question:"
    answer: str = "Answer:"
    example_separator: str = "---"
    # A line after every question (the examples' too): the rule small instruct models most need
    # to see last, where they attend best, e.g. how to cite. Empty: none.
    reminder: str = ""
    conversation: str = "Conversation so far:"  # completion style: the earlier turns' heading


@dataclass(frozen=True)
class FewShot:
    """How many examples to show and whether they are the first ``k`` or the most similar ones."""

    k: int = 0
    select: Literal["fixed", "similar"] = "fixed"


@dataclass(frozen=True)
class Template:
    """A versioned prompt template; rendering it is ``render.build_prompt``'s job."""

    id: str
    version: int
    description: str
    instruction: str
    examples: tuple[Example, ...]
    no_answer: str
    stop: tuple[str, ...]
    context: ContextLayout = ContextLayout()
    layout: Layout = Layout()
    fewshot: FewShot = FewShot()
    path: Path | None = field(default=None, compare=False)

    @property
    def ref(self) -> str:
        """``id@version``, the string every answer and eval row records."""
        return f"{self.id}@{self.version}"


# --- the file schema -------------------------------------------------------------------------


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt field must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PassageModel(_Strict):
    """An example passage; a bare string in the file means ``{text: ...}``."""

    text: str = Field(min_length=1)
    source: str = "example.txt"
    page: int | None = None
    heading: str = ""


class ExampleModel(_Strict):
    """A few-shot example whose citations must point at its own passages."""

    question: str = Field(min_length=1)
    passages: list[PassageModel | str] = Field(default_factory=list)
    answer: str = Field(min_length=1)

    @model_validator(mode="after")
    def _citations_exist(self) -> ExampleModel:
        for n in CITATION.findall(self.answer):
            if not 1 <= int(n) <= len(self.passages):
                raise ValueError(
                    f"answer cites [{n}] but the example has {len(self.passages)} passages"
                )
        return self


class ContextModel(_Strict):
    """Passage layout, checked so that rendering can never fail on a bad pattern."""

    header: str = ContextLayout.header
    page: str = ContextLayout.page
    heading: str = ContextLayout.heading
    open: str = ContextLayout.open
    close: str = ContextLayout.close
    separator: str = ContextLayout.separator
    empty: str = ContextLayout.empty
    truncated: str = ContextLayout.truncated

    @model_validator(mode="after")
    def _patterns_format(self) -> ContextModel:
        for name, pattern, values in (
            ("header", self.header, {"n": 1, "source": "s", "page": "", "heading": ""}),
            ("page", self.page, {"page": 1}),
            ("heading", self.heading, {"heading": "h"}),
        ):
            try:
                pattern.format(**values)
            except (KeyError, IndexError, ValueError) as e:
                allowed = ", ".join("{" + k + "}" for k in values)
                raise ValueError(
                    f"context.{name} {pattern!r} is not a pattern over {allowed}: {e!r}"
                ) from e
        return self

    @field_validator("open", "close")
    @classmethod
    def _fence(cls, v: str) -> str:
        # Neutralizing a marker inside passage text inserts a space into it, which removes every
        # occurrence only for markers of 2+ characters without whitespace; 3+ keeps them rare.
        if len(v) < 3 or any(c.isspace() for c in v):
            raise ValueError("a fence marker needs 3+ characters and no whitespace")
        return v


class LayoutModel(_Strict):
    """The prompt skeleton's labels."""

    passages: str = Layout.passages
    question: str = Layout.question
    answer: str = Layout.answer
    example_separator: str = Layout.example_separator
    reminder: str = Layout.reminder
    conversation: str = Layout.conversation


class FewShotModel(_Strict):
    """Example count (default: all of them) and selection mode."""

    k: int | None = Field(default=None, ge=0, description="examples shown; default: all")
    select: Literal["fixed", "similar"] = "fixed"


class TemplateModel(_Strict):
    """A whole template file, with the cross-field checks a reviewer would otherwise miss."""

    id: str = Field(pattern=TEMPLATE_ID)
    version: int = Field(ge=1)
    description: str = ""
    instruction: str = Field(min_length=1)
    examples: list[ExampleModel] = Field(default_factory=list)
    no_answer: str = Field(min_length=1)
    stop: list[str] = Field(default_factory=list)
    context: ContextModel = ContextModel()
    layout: LayoutModel = LayoutModel()
    fewshot: FewShotModel = FewShotModel()

    @model_validator(mode="after")
    def _consistent(self) -> TemplateModel:
        if self.no_answer not in self.instruction:
            raise ValueError("the instruction must quote the no_answer text verbatim")
        if self.context.open == self.context.close:
            raise ValueError("context.open and context.close must differ")
        if any(not s for s in self.stop):
            raise ValueError("stop sequences must not be empty")
        if self.fewshot.k is not None and self.fewshot.k > len(self.examples):
            raise ValueError(
                f"fewshot.k is {self.fewshot.k} but there are {len(self.examples)} examples"
            )
        for i, ex in enumerate(self.examples, 1):
            if ex.answer != self.no_answer and not CITATION.search(ex.answer):
                raise ValueError(
                    f"example {i}: the answer must cite a passage or be the no_answer text"
                )
        return self

    def to_template(self, path: Path | None = None) -> Template:
        """The frozen runtime form; ``path`` is kept for ``prompts show`` and error messages."""

        def passage(p: PassageModel | str) -> Passage:
            if isinstance(p, str):
                p = PassageModel(text=p)
            return Passage(text=p.text, source=p.source, page=p.page, heading=p.heading)

        return Template(
            id=self.id,
            version=self.version,
            description=self.description.strip(),
            instruction=self.instruction.strip(),
            examples=tuple(
                Example(
                    ex.question.strip(), tuple(passage(p) for p in ex.passages), ex.answer.strip()
                )
                for ex in self.examples
            ),
            no_answer=self.no_answer,
            stop=tuple(self.stop),
            context=ContextLayout(**self.context.model_dump()),
            layout=Layout(**self.layout.model_dump()),
            fewshot=FewShot(
                k=len(self.examples) if self.fewshot.k is None else self.fewshot.k,
                select=self.fewshot.select,
            ),
            path=path,
        )
