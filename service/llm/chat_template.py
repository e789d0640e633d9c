"""Chat messages rendered by a GGUF's own chat template, split into markup and message text.

The embedded backend has one decode path (completion over token ids): a chat prompt becomes the
string the model was trained on (``tokenizer.chat_template`` from the GGUF metadata, rendered
with llama-cpp-python's Jinja2 formatter) and then goes through the same block cache, stop scan
and end-of-generation handling as a completion prompt. The template's own markup is tokenized
with special tokens (``<|im_start|>`` is one token) and the message texts without, so a retrieved
passage that contains ``<|im_end|>`` stays text and cannot end its turn or open another one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Messages = Sequence[dict[str, str]]

# Private-use characters around a message's index: what the template is rendered with in place of
# each message's text, found again in its output and replaced by the text itself.
_OPEN, _CLOSE = "\ue000", "\ue001"


class ChatTemplateError(ValueError):
    """The template does not render messages in a way their text can be put back safely."""


class ChatTemplate:
    """A GGUF's chat template, with the generation prompt added (the model's turn comes next)."""

    def __init__(self, template: str, *, eos_token: str = "") -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        # No BOS from the template: the backend adds it from the GGUF's add_bos_token flag, as it
        # does for completion prompts, so a template that writes one never makes it two.
        self._format = Jinja2ChatFormatter(
            template, eos_token=eos_token, bos_token="", add_generation_prompt=True
        )

    @classmethod
    def of(cls, llama: Any) -> ChatTemplate | None:
        """The template of a loaded ``llama_cpp.Llama``, or None when its GGUF has none."""
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        eos = llama.token_eos()
        return cls(template, eos_token=llama._model.token_get_text(eos) if eos >= 0 else "")

    def segments(self, messages: Messages) -> list[tuple[str, bool]]:
        """The rendered prompt as ``(text, is_markup)`` pieces, in order.

        Message texts are stripped (templates differ on whether they trim them, so all are
        trimmed alike) and must come out of the template verbatim, each once.
        """
        marks = [f"{_OPEN}{i}{_CLOSE}" for i in range(len(messages))]
        stand_ins = [
            {"role": m["role"], "content": k} for m, k in zip(messages, marks, strict=True)
        ]
        try:
            rendered = self._format(messages=stand_ins).prompt  # type: ignore[arg-type]
        except Exception as e:  # jinja2 errors and the template's own raise_exception
            raise ChatTemplateError(f"the chat template failed: {e}") from e
        out: list[tuple[str, bool]] = []
        pos = 0
        for m, mark in zip(messages, marks, strict=True):
            at = rendered.find(mark, pos)
            if at < 0 or rendered.count(mark) != 1:
                raise ChatTemplateError(
                    f"the chat template does not render a {m['role']} message's text exactly once"
                )
            out += [(rendered[pos:at], True), (m["content"].strip(), False)]
            pos = at + len(mark)
        out.append((rendered[pos:], True))
        if any(_OPEN in text for text, markup in out if markup):
            raise ChatTemplateError("the chat template reordered the messages")
        return [(text, markup) for text, markup in out if text]

    def render(self, messages: Messages) -> str:
        """The prompt text the model sees (for display and tests; generation uses segments)."""
        return "".join(text for text, _ in self.segments(messages))
