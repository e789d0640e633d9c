"""The tunables: every parameter the eval loop may vary, declared once as a settings field.

A tunable is a leaf field of the settings model, addressed by its path: ``rag.template``,
``rag.retrieval.k``, ``rag.sampling.temperature``, ``chunk.size``. Everything that lists
parameters derives the list from here: sweep axes, configuration ids, row columns, promotion
files, report labels and the chat request's extension fields. Adding a tunable is one field with
its description (and ``json_schema_extra={"label": ...}`` for a short report label), plus the
code that uses it. A tunable added later also declares ``"absent"``: the value that behaves as
the code did before it existed, left out of configuration ids so earlier ids stay valid.

Two scopes:
- ``serve``: everything under ``rag``. Applied per request, promotable, visible in the API.
- ``index``: ``chunk.size`` and ``chunk.overlap``. Decided at ingest; a sweep answers them from
  re-chunked copies of the index, and promotion refuses them (re-ingest instead).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from ingest.settings import ChunkSettings
from service.settings import ALIASES, RagSettings, nest_legacy

Scope = Literal["serve", "index"]
INDEX_TUNABLES = ("size", "overlap")  # of ChunkSettings; the rest of it is not worth sweeping


class TunableError(ValueError):
    """A path that names no tunable, or a value its field does not accept."""


@dataclass(frozen=True)
class Tunable:
    path: str
    field: FieldInfo
    scope: Scope

    @property
    def name(self) -> str:
        """The last part of the path: the field's own name."""
        return self.path.rsplit(".", 1)[1]

    @property
    def _extra(self) -> dict[str, Any]:
        extra = self.field.json_schema_extra
        return extra if isinstance(extra, dict) else {}

    @property
    def label(self) -> str:
        """Short name for tables and plots: the field's ``label``, else its name."""
        label = self._extra.get("label")
        return str(label) if label else self.name.replace("_", " ")

    @property
    def description(self) -> str:
        return self.field.description or ""

    @property
    def default(self) -> Any:
        return self.field.get_default(call_default_factory=True)

    def implied(self, value: Any) -> bool:
        """Whether ``value`` is this tunable's ``absent`` value: what it was before it existed."""
        return "absent" in self._extra and self._extra["absent"] == value


def _leaves(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, FieldInfo]]:
    for name, info in model.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            yield from _leaves(sub, f"{prefix}.{name}")
        else:
            yield f"{prefix}.{name}", info


@cache
def tunables() -> tuple[Tunable, ...]:
    """Every tunable, in declaration order: the ``rag`` section, then chunking."""
    serve = [Tunable(p, f, "serve") for p, f in _leaves(RagSettings, "rag")]
    index = [Tunable(f"chunk.{n}", ChunkSettings.model_fields[n], "index") for n in INDEX_TUNABLES]
    return (*serve, *index)


@cache
def by_path() -> dict[str, Tunable]:
    return {t.path: t for t in tunables()}


def resolve(name: str) -> str:
    """The path ``name`` stands for: a path itself, or an old short name from ``ALIASES``."""
    if name in by_path():
        return name
    if name in ALIASES:
        return ALIASES[name]
    raise TunableError(f"unknown tunable {name}; known: {', '.join(by_path())}")


def label(path: str) -> str:
    """The report label of ``path`` (the path itself for one that is not a tunable)."""
    t = by_path().get(path)
    return t.label if t else path


def params_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The tunables in a results record, by path; older records used short names (``ALIASES``).

    Other keys (id, label, metrics...) are left out; a path beats a short name for the same one.
    """
    out: dict[str, Any] = {}
    for key, value in record.items():
        path = key if key in by_path() else ALIASES.get(key)
        if path is not None and (path not in out or key == path):
            out[path] = value
    return out


def identifying(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` ({path: value}) without values implied by a tunable's absence.

    Configuration ids hash this, so adding a tunable does not rename every configuration run
    or promoted before it: at its ``absent`` value it is left out, as it was then.
    """
    known = by_path()
    return {p: v for p, v in params.items() if p not in known or not known[p].implied(v)}


def values_of(rag: RagSettings, chunk: ChunkSettings) -> dict[str, Any]:
    """Every tunable's value in these settings, by path."""
    flat = flatten({"rag": rag.model_dump(mode="json"), "chunk": chunk.model_dump(mode="json")})
    return {t.path: flat[t.path] for t in tunables()}


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as ``{dotted.path: value}``: the inverse of ``nest``."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def nest(values: Mapping[str, Any], prefix: str = "rag") -> dict[str, Any]:
    """``{path: value}`` under ``prefix`` as a nested update (``{"sampling": {"top_p": 1}}``)."""
    out: dict[str, Any] = {}
    for path, value in values.items():
        head, _, rest = path.partition(".")
        if head != prefix:
            continue
        node = out
        *parents, leaf = rest.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def apply(rag: RagSettings, values: Mapping[str, Any]) -> RagSettings:
    """``rag`` with the serve-scope ``values`` ({path: value}) applied."""
    return merge(rag, nest(values))


def merge(rag: RagSettings, update: Mapping[str, Any]) -> RagSettings:
    """``rag`` with a partial nested ``update`` (a promotion file's ``params``), validated.

    Flat keys of promotion files written before paths (``k``, ``temperature``) are understood.
    """
    merged = _deep_merge(rag.model_dump(), nest_legacy(update))
    try:
        return RagSettings.model_validate(merged)
    except ValidationError as e:
        raise TunableError(_first_error(e)) from e


def check(path: str, value: Any) -> Any:
    """``value`` validated strictly by the field of ``path`` (TOML's 1 is fine for a float)."""
    try:
        return _adapter(path).validate_python(value, strict=True)
    except ValidationError as e:
        raise TunableError(_first_error(e)) from e


@cache
def _adapter(path: str) -> TypeAdapter[Any]:
    t = by_path()[path]
    annotated: Any = Annotated[t.field.annotation, t.field]
    return TypeAdapter(annotated)


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])
