"""The prompt that asks a model to rewrite a follow-up as a standalone question.

"And under which licence?" retrieves nothing on its own; "Under which licence is zpipe.c
released?" does. The prompt is fixed data like a template (instruction, two examples, then the
conversation), rendered deterministically in both styles and snapshot-tested: a base model
continues after "Standalone question:", an instruct model answers the last user turn. Answers in
the conversation are cut to their first words: the rewrite needs what was talked about, and a
small model copies from a long answer instead of rewriting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prompts.fence import neutralize
from prompts.render import Exchange, Messages, Style

REF = "condense@1"
INSTRUCTION = (
    "Rewrite the follow-up as one standalone question that can be understood without the "
    "conversation: name what it refers to and keep its meaning. Reply with the question only."
)
CONVERSATION, USER, ASSISTANT = "Conversation:", "User:", "Assistant:"
FOLLOW_UP, STANDALONE = "Follow-up:", "Standalone question:"
# What a rewrite must not contain: any of these means the model continued the prompt instead.
LABELS = (CONVERSATION, USER, ASSISTANT, FOLLOW_UP, STANDALONE, "Question:", "Answer:", "Passages:")
STOP = ("\n",)
ANSWER_WORDS = 40  # of each earlier answer shown


@dataclass(frozen=True)
class Shot:
    history: tuple[Exchange, ...]
    follow_up: str
    rewrite: str


EXAMPLES = (
    Shot(
        (("How long is the warranty on the kettle?", "Two years from the date of purchase."),),
        "and does it cover the lid?",
        "Does the two-year warranty on the kettle cover the lid?",
    ),
    Shot(
        (("Which payment methods does the shop accept?", "Cards and bank transfers."),),
        "why not cash?",
        "Why does the shop not accept cash payments?",
    ),
)


def _line(text: str, words: int | None = None) -> str:
    parts = text.split()
    cut = parts[:words] if words is not None else parts
    return neutralize(" ".join(cut) + (" …" if len(cut) < len(parts) else ""), LABELS)


def _conversation(history: Sequence[Exchange], follow_up: str) -> str:
    lines = [CONVERSATION]
    for q, a in history:
        lines += [f"{USER} {_line(q)}", f"{ASSISTANT} {_line(a, ANSWER_WORDS)}"]
    lines.append(f"{FOLLOW_UP} {_line(follow_up)}")
    return "\n".join(lines)


def render_condense(
    history: Sequence[Exchange], follow_up: str, style: Style
) -> tuple[str | None, Messages | None]:
    """The rewrite prompt as ``(text, None)`` (completion) or ``(None, messages)`` (chat).

    Labels inside the conversation are defanged in any case and spacing (``neutralize``), so a
    message cannot end the conversation early or pose as the answer.
    """
    if style == "completion":
        parts = [INSTRUCTION]
        parts += [
            f"{_conversation(s.history, s.follow_up)}\n{STANDALONE} {s.rewrite}" for s in EXAMPLES
        ]
        parts.append(f"{_conversation(history, follow_up)}\n{STANDALONE}")
        return "\n\n".join(parts), None
    messages = [{"role": "system", "content": INSTRUCTION}]
    for s in EXAMPLES:
        messages.append({"role": "user", "content": _conversation(s.history, s.follow_up)})
        messages.append({"role": "assistant", "content": s.rewrite})
    messages.append({"role": "user", "content": _conversation(history, follow_up)})
    return None, tuple(messages)
