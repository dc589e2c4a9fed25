"""The schema's building blocks: a :class:`Field` per key, a :class:`Section` per mapping.

Each key of the scenario format is declared once, as a :class:`Field` in a
section's table (``lab/scenario/schema.py``): its YAML key, the dataclass
attribute it fills (``pace`` -> ``LoadSpec.pace_s``), its parser and how it
is written back (seconds -> ``"10s"``). Everything else follows from that one
declaration, the way pre-commit's ``clientlib`` describes its config with
``cfgv`` tables:

- the allowed keys and the did-you-mean for a typo (:meth:`Section.open`);
- parsing, with every bad field recorded and replaced by its default so one
  file's errors are reported together (:meth:`Section.given`);
- the defaults, which are the dataclass defaults in ``lab/scenario/types.py``
  and are not repeated here: a key that is absent is simply not passed to the
  constructor (:meth:`Section.build`);
- the resolved dump a run directory keeps, which loads back to the same value
  (:meth:`Section.dump`).

So a key cannot be accepted but not dumped, or dumped under another name than
the one the loader reads. Rules that relate fields (steps must increase,
custom servers, host references) are code around the tables, in
``lab/scenario/build.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from lab.scenario.errors import Invalid
from lab.scenario.nodes import Doc, Map, Parser, is_null


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()  # a Field's own default, when it has none


def _same(value: Any) -> Any:
    return value


def _never(value: Any, obj: Any) -> bool:
    return False


def is_none(value: Any, obj: Any) -> bool:
    return value is None


@dataclasses.dataclass(frozen=True)
class Field:
    """One key of one section, declared once.

    ``attr``: the dataclass attribute, when it is not spelled like the key;
    ``None`` for a key that fills no attribute (``load.hold``, ``defaults``:
    the code around the table reads it). ``parse`` is None only for a key
    whose parser depends on other fields; the code around the table passes it
    to :meth:`Section.given`. ``dump`` turns the attribute back into YAML data
    and ``omit(value, obj)`` leaves it out of the dump (an unset optional value).
    ``required`` says why the key must be there. ``default`` is only for a key
    without an attribute; the others take the dataclass default.

    ``models``: the built-in models this server key applies to (``workers``:
    threadpool only), with ``applies`` saying what it is for them. Given on
    another model's server it is an error; inherited from ``defaults:`` it
    applies to the models it fits only. The dump writes it only for them.
    """

    key: str
    parse: Parser | None
    attr: str | None = ""
    dump: Callable[[Any], Any] = _same
    omit: Callable[[Any, Any], bool] = _never
    required: str = ""
    default: Any = NO_DEFAULT
    models: frozenset[str] | None = None
    applies: str = ""

    def __post_init__(self) -> None:
        if self.attr == "":
            object.__setattr__(self, "attr", self.key)

    def fits(self, model: str | None) -> bool:
        return self.models is None or model in self.models


@dataclasses.dataclass(frozen=True)
class Section:
    """The table of one mapping of the format, and the dataclass it builds."""

    name: str
    cls: type | None
    fields: tuple[Field, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.fields)

    def field(self, key: str) -> Field:
        return next(f for f in self.fields if f.key == key)

    def subset(self, name: str, keys: tuple[str, ...]) -> Section:
        """The same declarations for some keys only (``defaults:`` takes server keys)."""
        return Section(name, None, tuple(f for f in self.fields if f.key in keys))

    def default(self, key: str) -> Any:
        """The value an absent key gets: the dataclass default (or the field's own)."""
        f = self.field(key)
        if f.default is not NO_DEFAULT or self.cls is None or f.attr is None:
            return f.default
        spec = next(d for d in dataclasses.fields(self.cls) if d.name == f.attr)
        if spec.default_factory is not dataclasses.MISSING:
            return spec.default_factory()
        return spec.default

    def open(self, doc: Doc, node: yaml.Node, path: str) -> Map:
        """The mapping at ``node``, its keys checked against this table."""
        return Map(doc, node, path, self.keys)

    def given(self, doc: Doc, m: Map, got: dict[str, Any] | None = None,
              parsers: Mapping[str, Parser] | None = None) -> dict[str, Any]:
        """Parse every key present in ``m``, in table order, into ``got`` (YAML
        key -> value; returned). A bad value is recorded, its key added to
        ``m.failed`` and left out, so it gets its default. An explicit null is
        the default too, except for a required key. ``parsers`` supplies or
        replaces a field's parser; one that reads ``got`` sees the keys
        declared before its own."""
        got = {} if got is None else got
        for f in self.fields:
            node, path = m.fields.get(f.key), m.sub(f.key)
            if node is None:
                if f.required:
                    doc.report(m.node, path, f"is missing ({f.required})")
                    m.failed.add(f.key)
                continue
            if is_null(node) and not f.required:
                continue
            parse = (parsers or {}).get(f.key, f.parse)
            if parse is None:
                raise TypeError(f"{self.name}.{f.key}: no parser given")
            try:
                got[f.key] = parse(doc, node, path)
            except Invalid as exc:
                doc.record(exc)
                m.failed.add(f.key)
        return got

    def build(self, values: Mapping[str, Any], **fallback: Any) -> Any:
        """The dataclass from parsed values (by YAML key). An absent key gets
        ``fallback`` (by attribute name: a default the code around the table
        decides, like the first host) or else the dataclass default; None when
        an attribute without a default (a required key that failed) has no value."""
        assert self.cls is not None
        kwargs = dict(fallback)
        kwargs.update({f.attr: values[f.key] for f in self.fields
                       if f.attr is not None and f.key in values})
        for spec in dataclasses.fields(self.cls):
            if (spec.name not in kwargs and spec.default is dataclasses.MISSING
                    and spec.default_factory is dataclasses.MISSING and spec.init):
                return None
        return self.cls(**kwargs)

    def read(self, doc: Doc, node: yaml.Node, path: str) -> Any:
        """A parser for a plain section: open, parse, build."""
        value = self.build(self.given(doc, self.open(doc, node, path)))
        if value is None:
            raise Invalid(None)  # a required key is missing: already reported
        return value

    def dump(self, obj: Any) -> dict[str, Any]:
        """``obj`` as YAML-ready data under the YAML keys; the inverse of :meth:`read`."""
        out: dict[str, Any] = {}
        model = getattr(obj, "model", None)
        for f in self.fields:
            if f.attr is None or (f.models is not None and not f.fits(model)):
                continue
            value = getattr(obj, f.attr)
            if not f.omit(value, obj):
                out[f.key] = f.dump(value)
        return out
