"""Finding a strategy by name and building it with validated parameters (the shell's side of the strategy API).

``strategy.kind`` is a built-in's name (:data:`BUILT_INS`) or ``"package.module:ClassName"``, imported from the
import path plus ``strategy.path`` (``--strategy-path DIR``: a folder of the user's strategy files). The class must
subclass :class:`engine.strategy.Strategy`; its ``Params`` (a frozen dataclass) is validated from
``[strategy.params]`` (TOML), ``ENGINE_STRATEGY__PARAMS__<NAME>`` or ``--param name=value`` by pydantic, so a bad
value fails at start with the parameter's name and what it accepts.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from engine.core.strategies import Bollinger, MaCross, Quoting, Strategy

BUILT_INS: dict[str, type[Strategy[Any, Any]]] = {"ma_cross": MaCross, "bollinger": Bollinger, "quoting": Quoting}
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # a strategy's name: the prefix of its client order ids, a label


class StrategyError(ValueError):
    """A strategy that cannot be loaded or built: one line saying why."""


def _import(kind: str, path: Path | None) -> type[Strategy[Any, Any]]:
    if kind in BUILT_INS:
        return BUILT_INS[kind]
    module_name, sep, attr = kind.partition(":")
    if not sep or not module_name or not attr.isidentifier():
        built = ", ".join(sorted(BUILT_INS))
        raise StrategyError(f"strategy.kind: {kind!r} is neither a built-in ({built}) nor 'package.module:ClassName'")
    if path is not None:
        folder = str(path.expanduser().resolve())
        if not Path(folder).is_dir():
            raise StrategyError(f"strategy.path: {path}: no such folder")
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        where = f" in {path} or" if path is not None else ""
        raise StrategyError(
            f"strategy.kind: {kind!r}: no module {exc.name!r}{where} on the import path (--strategy-path DIR)"
        ) from None
    except Exception as exc:  # the user's module raised while importing: say what, not a traceback
        raise StrategyError(f"strategy.kind: {kind!r}: importing {module_name} failed: {exc!r}") from None
    cls = getattr(module, attr, None)
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise StrategyError(
            f"strategy.kind {kind!r}: {module_name}.{attr} is not a subclass of engine.strategy.Strategy"
        )
    return cls


def _params(cls: type[Strategy[Any, Any]], values: Mapping[str, Any]) -> Any:
    params_cls = cls.Params
    if not dataclasses.is_dataclass(params_cls):
        raise StrategyError(f"{cls.__name__}.Params must be a frozen dataclass")
    names = [f.name for f in dataclasses.fields(params_cls) if f.init]
    unknown = sorted(set(values) - set(names))
    if unknown:
        takes = ", ".join(names) or "none"
        raise StrategyError(f"strategy.params.{unknown[0]}: not a parameter of {cls.__name__} (it takes: {takes})")
    try:
        return TypeAdapter(params_cls).validate_python(dict(values))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"strategy.params.{loc}: {msg}" if loc else f"strategy.params: {msg}")
        raise StrategyError("; ".join(lines)) from None
    except (TypeError, ValueError, ArithmeticError) as exc:  # raised by Params.__post_init__
        raise StrategyError(f"strategy.params: {exc}") from None


def build(kind: str, params: Mapping[str, Any], *, path: Path | None = None, name: str | None = None) -> Any:
    """The strategy ``kind`` with ``params``, named ``name`` (default: the class's own default name, or its kind)."""
    cls = _import(kind, path)
    values = _params(cls, params)
    default = next((f.default for f in dataclasses.fields(cls) if f.name == "name"), "")
    chosen = name or (default if isinstance(default, str) and default else cls.__name__.lower())
    if not NAME.fullmatch(chosen):
        raise StrategyError(f"strategy.name: {chosen!r}: 1-32 of a-z, 0-9 and _, starting with a letter")
    try:
        strategy = cls(values, chosen)
        strategy.initial()
    except Exception as exc:  # the user's constructor or initial() raised
        raise StrategyError(f"strategy.kind: {kind!r} ({chosen}) cannot start: {exc!r}") from None
    return strategy


def source_files(strategy: Strategy[Any, Any]) -> list[Path]:
    """The files of the strategy's own code outside this repository's core (part of the snapshots' fingerprint)."""
    out = []
    for klass in type(strategy).__mro__:
        module = sys.modules.get(klass.__module__)
        file = getattr(module, "__file__", None)
        if (
            file
            and not klass.__module__.startswith(("engine.", "events."))
            and klass.__module__ not in ("builtins", "typing")
        ):
            out.append(Path(file))
    return sorted(set(out))


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``--param name=value`` (repeatable) as a mapping; pydantic converts each value to the parameter's type."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise StrategyError(f"--param {pair!r}: give name=value, e.g. --param fast=5")
        out[key.strip()] = value
    return out
