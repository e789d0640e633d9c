"""``ragtune prompts list | show | render``: look at templates and the prompts they produce.

Rendering here needs no model: tokens are approximated by whitespace-separated words, and
``select: similar`` examples are ranked with a hashed bag of words instead of the sentence encoder,
so reviewing a wording change takes a second. Handlers read only ``settings.home``: user templates
live in ``<home>/prompts/<id>/<version>.yaml`` and override built-in ones of the same version.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Protocol

from prompts.fewshot import ExampleBank, hashed_bag_of_words
from prompts.registry import TemplateError, TemplateNotFound, TemplateRegistry, builtin_dir
from prompts.render import Passage, PromptBudgetError, build_prompt, format_rendered


class PromptsConfig(Protocol):
    """The one setting these commands read (``service.settings.Settings`` has it)."""

    @property
    def home(self) -> Path: ...


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Register ``prompts`` with its actions; ``common`` (--home, --config) goes on each action."""
    p = sub.add_parser("prompts", help="list, show and render prompt templates")
    actions = p.add_subparsers(dest="prompts_command", required=True, metavar="ACTION")

    a = actions.add_parser("list", parents=[common], help="templates by id@version")
    a.set_defaults(handler=cmd_list)

    a = actions.add_parser("show", parents=[common], help="print a template's YAML")
    a.add_argument("ref", metavar="ID@VERSION", help="template, or just ID for its latest version")
    a.set_defaults(handler=cmd_show)

    a = actions.add_parser("render", parents=[common], help="print the prompt for a question")
    a.add_argument("ref", metavar="ID@VERSION", help="template, or just ID for its latest version")
    a.add_argument("question")
    a.add_argument("--style", choices=["completion", "chat"], default="completion")
    a.add_argument(
        "--passage",
        action="append",
        default=[],
        metavar="TEXT",
        help="a retrieved passage (repeat)",
    )
    a.add_argument("--context-window", type=int, default=2048, help="tokens (default 2048)")
    a.add_argument("--answer-tokens", type=int, default=256, help="tokens (default 256)")
    a.set_defaults(handler=cmd_render)


def user_dir(cfg: PromptsConfig) -> Path:
    """Where an operator's own templates live, beside the index in the data directory."""
    return Path(cfg.home) / "prompts"


def registry(cfg: PromptsConfig) -> TemplateRegistry:
    """Built-in templates, overridden by the user's own."""
    return TemplateRegistry([builtin_dir(), user_dir(cfg)])


def _fail(e: Exception) -> int:
    print(f"ragtune prompts: {e}", file=sys.stderr)
    return 1


def cmd_list(args: argparse.Namespace, cfg: PromptsConfig) -> int:
    try:
        templates = registry(cfg).list()
    except TemplateError as e:
        return _fail(e)
    width = max((len(t.ref) for t in templates), default=0)
    for t in templates:
        where = "" if t.path is None or t.path.is_relative_to(builtin_dir()) else f"  ({t.path})"
        print(f"{t.ref:<{width}}  {t.description.splitlines()[0] if t.description else ''}{where}")
    return 0


def cmd_show(args: argparse.Namespace, cfg: PromptsConfig) -> int:
    try:
        t = registry(cfg).get(args.ref)
    except (TemplateError, TemplateNotFound) as e:
        return _fail(e)
    assert t.path is not None  # every registry template comes from a file
    print(f"# {t.ref} from {t.path}")
    print(t.path.read_text(encoding="utf-8"), end="")
    return 0


def approx_tokens(text: str) -> int:
    """Whitespace-separated words: close enough to judge a prompt's size without a tokenizer."""
    return len(text.split())


def cmd_render(args: argparse.Namespace, cfg: PromptsConfig) -> int:
    try:
        t = registry(cfg).get(args.ref)
    except (TemplateError, TemplateNotFound) as e:
        return _fail(e)
    passages = [Passage(text=text, source=f"passage-{i}") for i, text in enumerate(args.passage, 1)]
    examples = None
    if t.fewshot.select == "similar":
        examples = ExampleBank(t.examples, hashed_bag_of_words).select(args.question, t.fewshot.k)
    try:
        rendered = build_prompt(
            t,
            args.question,
            passages,
            style=args.style,
            count_tokens=approx_tokens,
            context_window=args.context_window,
            answer_tokens=args.answer_tokens,
            examples=examples,
        )
    except PromptBudgetError as e:
        return _fail(e)
    print(format_rendered(rendered))
    print(
        f"{rendered.template}, {rendered.style}: ~{rendered.prompt_tokens} tokens (words), "
        f"{len(rendered.passages)} passages, {len(rendered.dropped)} dropped, "
        f"{len(rendered.examples)} examples",
        file=sys.stderr,
    )
    return 0
