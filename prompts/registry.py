"""Find templates by ``id@version`` in the built-in folder and the user's own folders.

Templates are files, not code, so a wording change is a reviewable diff and a new version sits
beside the old one instead of replacing it: answers already recorded as ``grounded-qa@1`` stay
reproducible. Later folders override earlier ones for the same ``id@version``, which lets an
operator patch a built-in template without forking the package.
"""

from __future__ import annotations

import builtins
import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError

from prompts.template import TEMPLATE_ID, Example, Passage, Template, TemplateModel

__all__ = [
    "Example",
    "Passage",
    "Template",
    "TemplateError",
    "TemplateNotFound",
    "TemplateRegistry",
    "VersionExists",
    "builtin_dir",
    "load_template",
    "parse_template",
    "template_files",
    "write_version",
]

_VERSION_FILE = re.compile(r"^[1-9][0-9]*$")


class TemplateError(Exception):
    """A template file that cannot be used; the message names the file and what is wrong."""


class TemplateNotFound(LookupError):
    """No template with that id (or version); the message lists the ones that exist."""

    def __str__(self) -> str:  # LookupError would repr() a single argument, quotes and all
        return str(self.args[0]) if self.args else ""


def builtin_dir() -> Path:
    """The templates shipped inside the package (``prompts/templates``)."""
    return Path(__file__).resolve().parent / "templates"


def load_template(path: Path) -> Template:
    """Parse and validate one ``<id>/<version>.yaml`` file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TemplateError(f"{path}: cannot read: {e}") from e
    return parse_template(text, path)


def parse_template(text: str, path: Path) -> Template:
    """Validate ``text`` as the file at ``path`` would be (``path`` need not exist yet).

    The one check of a template's source: files loaded by the registry and versions written
    through ``write_version`` (the API, ``eval accept-examples``) pass through it alike.
    """
    if not _VERSION_FILE.match(path.stem):
        raise TemplateError(f"{path}: file name must be <version>.yaml with a positive integer")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise TemplateError(f"{path}: invalid YAML: {e}") from e
    if not isinstance(data, dict):
        raise TemplateError(
            f"{path}: expected a mapping of template fields, got {type(data).__name__}"
        )
    try:
        model = TemplateModel.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or '(template)'}: {err['msg'].removeprefix('Value error, ')}"
            for err in e.errors()
        )
        raise TemplateError(f"{path}: {problems}") from None
    if model.id != path.parent.name:
        raise TemplateError(
            f"{path}: id {model.id!r} does not match its folder {path.parent.name!r}"
        )
    if model.version != int(path.stem):
        raise TemplateError(f"{path}: version {model.version} does not match the file name")
    return model.to_template(path)


class VersionExists(FileExistsError):
    """The version to write is already a file: versions are never replaced."""


def write_version(user_dir: Path, text: str, template_id: str, version: int) -> Template:
    """Validate ``text`` as ``user_dir/<id>/<version>.yaml``, then create that file.

    Nothing is written unless the source loads (a broken file would stop the registry from
    loading at all), and an existing file is never replaced: answers recorded as ``id@version``
    must stay reproducible. The file appears whole (written aside, then linked into place).
    """
    if not re.match(TEMPLATE_ID, template_id):
        raise TemplateError(f"{template_id!r} is not a template id ({TEMPLATE_ID})")
    target = user_dir / template_id / f"{version}.yaml"
    template = parse_template(text, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, target)  # fails if the version exists, even when written meanwhile
    except FileExistsError:
        raise VersionExists(f"{template.ref} already exists ({target})") from None
    finally:
        tmp.unlink()
    return template


def template_files(dirs: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime_ns) of every template file under ``dirs``: what a registry loaded from.

    Another process (a second API replica) may add a version; comparing this with a registry's
    ``files`` tells whether it is out of date, for a directory listing and a stat per file.
    """
    out = []
    for root in map(Path, dirs):
        if not root.is_dir():
            continue
        for path in sorted(root.glob("*/*.yaml")):
            try:
                st = path.stat()
            except FileNotFoundError:  # removed since the listing
                continue
            out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


class TemplateRegistry:
    """Every template under ``dirs`` (each holding ``<id>/<version>.yaml``), loaded up front.

    Loading eagerly means a broken user file fails at start-up with its path, not on the first
    request that happens to ask for it. Folders that do not exist are skipped: the user folder
    is optional.
    """

    def __init__(self, dirs: Sequence[Path]) -> None:
        self.dirs = tuple(Path(d) for d in dirs)
        self._templates: dict[tuple[str, int], Template] = {}
        # The files as they were before loading: a change made while loading shows next time.
        self.files = template_files(self.dirs)
        for root in self.dirs:
            if not root.is_dir():
                continue
            for path in sorted(root.glob("*/*.yaml")):
                t = load_template(path)
                self._templates[(t.id, t.version)] = t

    def list(self) -> builtins.list[Template]:
        """All templates, by id then version."""
        return [self._templates[k] for k in sorted(self._templates)]

    def get(self, ref: str) -> Template:
        """``"id@version"`` exactly, or ``"id"`` for its latest version."""
        name, sep, version = ref.strip().partition("@")
        if sep and _VERSION_FILE.match(version):
            found = self._templates.get((name, int(version)))
        elif sep:
            found = None
        else:
            versions = [v for (i, v) in self._templates if i == name]
            found = self._templates[(name, max(versions))] if versions else None
        if found is None:
            available = ", ".join(t.ref for t in self.list()) or "none"
            raise TemplateNotFound(f"no prompt template {ref!r}; available: {available}")
        return found

    def versions(self, template_id: str) -> builtins.list[int]:
        """The versions of ``template_id``, oldest first (empty: no such template)."""
        return sorted(v for (i, v) in self._templates if i == template_id)

    def next_version(self, template_id: str) -> int:
        """The version a new one of ``template_id`` gets: one past the newest (1 for a new id)."""
        return max(self.versions(template_id), default=0) + 1
