"""Loading templates: built-ins, latest version, user overrides, clear errors for bad files."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from prompts.registry import (
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateRegistry,
    builtin_dir,
    load_template,
    template_files,
)
from tests.conftest import REPO

BUILTIN_V1 = builtin_dir() / "grounded-qa" / "1.yaml"


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """\
id: mine
version: 1
instruction: Answer from the passages or say "Not known.".
no_answer: Not known.
"""


def test_builtins_load_and_latest_is_default(builtins: TemplateRegistry) -> None:
    assert [t.ref for t in builtins.list()] == ["grounded-chat@1", "grounded-qa@1", "grounded-qa@2"]
    assert builtins.get("grounded-qa").version == 2
    t = builtins.get("grounded-qa@1")
    assert (t.id, t.version, t.ref) == ("grounded-qa", 1, "grounded-qa@1")
    assert t.path == BUILTIN_V1.resolve()


@pytest.mark.parametrize("ref", ["grounded-qa@1", "grounded-qa@2", "grounded-chat@1"])
def test_builtin_templates_teach_grounding(builtins: TemplateRegistry, ref: str) -> None:
    t = builtins.get(ref)
    assert t.no_answer == "I don't know based on the provided documents."
    assert t.no_answer in t.instruction
    assert t.context.open in t.instruction and t.context.close in t.instruction
    assert "ignore" in t.instruction.lower() or "never follow" in t.instruction.lower()
    assert any(ex.answer == t.no_answer for ex in t.examples), "needs a don't-know example"
    assert any("[2]" in ex.answer for ex in t.examples) or any(
        "[1]" in ex.answer for ex in t.examples
    )
    assert all(s.startswith("\n") for s in t.stop)
    assert t.stop or t.id == "grounded-chat"  # a chat model ends its turn itself
    assert 1 <= t.fewshot.k <= len(t.examples)


def test_templates_are_frozen(builtins: TemplateRegistry) -> None:
    t = builtins.get("grounded-qa@1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.version = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.examples[0].answer = "x"  # type: ignore[misc]


def test_user_dir_overrides_same_version_and_adds_new_ones(tmp_path: Path) -> None:
    text = BUILTIN_V1.read_text(encoding="utf-8")
    write(
        tmp_path, "grounded-qa/1.yaml", text.replace("description: >-", "description: >-\n  Local.")
    )
    write(tmp_path, "grounded-qa/7.yaml", text.replace("version: 1", "version: 7"))
    write(tmp_path, "mine/1.yaml", MINIMAL)
    reg = TemplateRegistry([builtin_dir(), tmp_path])
    assert [t.ref for t in reg.list()] == [
        "grounded-chat@1",
        "grounded-qa@1",
        "grounded-qa@2",
        "grounded-qa@7",
        "mine@1",
    ]
    assert reg.get("grounded-qa@1").description.startswith("Local.")
    assert reg.get("grounded-qa@1").path == tmp_path / "grounded-qa" / "1.yaml"
    assert reg.get("grounded-qa@2").path == (builtin_dir() / "grounded-qa" / "2.yaml").resolve()
    assert reg.get("grounded-qa").version == 7
    mine = reg.get("mine")
    assert (mine.examples, mine.stop, mine.fewshot.k) == ((), (), 0)


def test_files_tell_a_registry_it_is_out_of_date(tmp_path: Path) -> None:
    """What another process (an API replica) wrote shows in ``template_files``, not in the
    registry's ``files``, until the registry is loaded again."""
    user = tmp_path / "prompts"  # not there yet: a user folder is optional
    reg = TemplateRegistry([builtin_dir(), user])
    assert reg.files == template_files(reg.dirs) and len(reg.files) == 3
    write(user, "mine/1.yaml", MINIMAL)
    assert template_files(reg.dirs) != reg.files
    again = TemplateRegistry(reg.dirs)
    assert again.files == template_files(reg.dirs) and again.get("mine").ref == "mine@1"


def test_missing_dirs_are_skipped(tmp_path: Path) -> None:
    reg = TemplateRegistry([builtin_dir(), tmp_path / "nope"])
    assert len(reg.list()) == 3
    assert TemplateRegistry([]).list() == []


@pytest.mark.parametrize("ref", ["nope", "nope@1", "grounded-qa@9", "grounded-qa@one", "@1"])
def test_not_found_lists_available(builtins: TemplateRegistry, ref: str) -> None:
    with pytest.raises(TemplateNotFound) as e:
        builtins.get(ref)
    msg = str(e.value)
    assert repr(ref) in msg
    assert "available: grounded-chat@1, grounded-qa@1, grounded-qa@2" in msg


BAD = {
    "yaml": ("mine/1.yaml", "id: mine\ninstruction: [unclosed\n", "invalid YAML"),
    "not a mapping": ("mine/1.yaml", "- a\n- b\n", "expected a mapping"),
    "missing field": (
        "mine/1.yaml",
        "id: mine\nversion: 1\nno_answer: x\n",
        "instruction: Field required",
    ),
    "unknown field": ("mine/1.yaml", MINIMAL + "temperature: 0.2\n", "temperature: Extra inputs"),
    "id vs folder": ("other/1.yaml", MINIMAL, "does not match its folder"),
    "version vs file": ("mine/2.yaml", MINIMAL, "does not match the file name"),
    "file name": ("mine/latest.yaml", MINIMAL, "<version>.yaml"),
    "no_answer not quoted": (
        "mine/1.yaml",
        MINIMAL.replace("Not known.", "Unknown.", 1),
        "no_answer text",
    ),
    "bad header": (
        "mine/1.yaml",
        MINIMAL + "context:\n  header: '[{n}] {file}'\n",
        "context.header",
    ),
    "fence with space": ("mine/1.yaml", MINIMAL + "context:\n  open: '<< a'\n", "fence marker"),
    "same fences": (
        "mine/1.yaml",
        MINIMAL + "context:\n  open: '|||'\n  close: '|||'\n",
        "must differ",
    ),
    "select": ("mine/1.yaml", MINIMAL + "fewshot:\n  select: random\n", "fewshot.select"),
    "k too big": ("mine/1.yaml", MINIMAL + "fewshot:\n  k: 2\n", "fewshot.k is 2"),
    "bad citation": (
        "mine/1.yaml",
        MINIMAL
        + "examples:\n  - question: q?\n    passages: [a text]\n    answer: It is so [2].\n",
        "cites [2] but the example has 1 passages",
    ),
    "uncited answer": (
        "mine/1.yaml",
        MINIMAL + "examples:\n  - question: q?\n    passages: [a text]\n    answer: It is so.\n",
        "must cite a passage",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_files_raise_with_path_and_reason(tmp_path: Path, case: str) -> None:
    rel, text, reason = BAD[case]
    path = write(tmp_path, rel, text)
    with pytest.raises(TemplateError) as e:
        TemplateRegistry([builtin_dir(), tmp_path])
    msg = str(e.value)
    assert str(path) in msg
    assert reason in msg


def test_example_passages_as_strings_or_mappings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mine/1.yaml",
        MINIMAL
        + "examples:\n  - question: q?\n    passages:\n      - plain text\n"
        + "      - {text: mapped, source: a.txt, page: 2}\n    answer: It is mapped [2].\n",
    )
    t: Template = load_template(path)
    (ex,) = t.examples
    assert [(p.text, p.source, p.page) for p in ex.passages] == [
        ("plain text", "example.txt", None),
        ("mapped", "a.txt", 2),
    ]


def test_templates_ship_as_package_data() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["prompts"]
    shipped = {p for g in globs for p in builtin_dir().parent.glob(g)}
    assert set(builtin_dir().glob("*/*.yaml")) <= shipped
    assert any(d.startswith("pyyaml==") for d in pyproject["project"]["dependencies"])
