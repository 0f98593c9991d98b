"""Job definitions: a named, ordered list of step functions with typed params.

A step function takes a :class:`domain.context.StepContext` and may be sync or
async. Definitions live in a :class:`Registry`; ``--jobs`` loads more from a
module or a file that defines them at its top level.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

StepFunction = Callable[..., Any]
MASK = "***"  # what a secret looks like outside its step (domain/secrets.py)
PARAM_TYPES: dict[type, str] = {int: "integer", float: "number", str: "string", bool: "boolean"}
# Params are stored in the job's first event and served with the job in every
# job listing: a string param is bounded like a request body is.
MAX_STRING_PARAM = 64 * 1024


class DefinitionError(ValueError):
    """Raised for an unknown definition or bad params; ``field`` names the culprit."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class ParamRefused(DefinitionError):
    """A param of the right type that its declared constraints (``min``,
    ``max``, ``choices``, ``pattern``, ``check``, the string length) refuse:
    the request is well formed, its value is not acceptable (a 400), unlike
    an unknown definition or param or a value of the wrong type."""


@dataclass(frozen=True)
class Param:
    """A typed param with declared constraints, which the API enforces and
    the queue page's form shows and checks before sending: ``min`` and
    ``max`` (numbers, inclusive), ``choices`` (the only values taken),
    ``pattern`` (a regular expression a string must match whole; keep to the
    syntax Python and browsers share). ``check``, when given, raises
    ValueError (its message says why) for a value the constraints cannot
    express, such as a size that would exhaust memory; it runs first, so its
    message wins."""

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    check: Callable[[Any], object] | None = None  # what it returns is not used
    secret: bool = False  # never stored, shown or logged: see domain/secrets.py
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    pattern: str | None = None

    def __post_init__(self) -> None:
        if self.secret and self.type is not str:
            raise ValueError(f"secret param {self.name!r} must be a string param")
        if (self.min is not None or self.max is not None) and self.type not in (int, float):
            raise ValueError(f"param {self.name!r}: min and max need an int or float param")
        if self.pattern is not None:
            if self.type is not str:
                raise ValueError(f"param {self.name!r}: a pattern needs a string param")
            re.compile(self.pattern)

    def coerce(self, value: Any) -> Any:
        """Accept only values of the declared JSON type (ints are valid numbers),
        strings up to MAX_STRING_PARAM characters, and what ``check`` passes."""
        ok = isinstance(value, self.type) and not (
            self.type is not bool and isinstance(value, bool)
        )
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif not ok:
            shown = "a secret value" if self.secret else _shown(value)
            raise self._error(f"must be {PARAM_TYPES[self.type]}, got {shown}")
        if isinstance(value, str) and len(value) > MAX_STRING_PARAM:
            raise self._refused(
                f"is {len(value)} characters long; at most {MAX_STRING_PARAM} are accepted"
            )
        if self.check is not None:
            try:
                self.check(value)
            except ValueError as e:
                raise self._refused("is not accepted" if self.secret else str(e)) from None
        self._constrain(value)
        return value

    def _constrain(self, value: Any) -> None:
        """Refuse a value outside ``min``/``max``/``choices``/``pattern``."""
        low, high = self.min, self.max
        if low is not None and high is not None and not low <= value <= high:
            raise self._refused(f"must be between {low:.15g} and {high:.15g}, got {value:.15g}")
        if low is not None and not low <= value:  # written so that NaN is refused too
            raise self._refused(f"must be at least {low:.15g}, got {value:.15g}")
        if high is not None and not value <= high:
            raise self._refused(f"must be at most {high:.15g}, got {value:.15g}")
        if self.choices is not None and value not in self.choices:
            shown = "a secret value" if self.secret else _shown(value)
            allowed = ", ".join(repr(c) for c in self.choices)
            raise self._refused(f"must be one of {allowed}; got {shown}")
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            shown = "a secret value" if self.secret else _shown(value)
            raise self._refused(f"must match {self.pattern}; got {shown}")

    def describe(self) -> dict[str, Any]:
        """The param as the API lists it (the page's form is built from this)."""
        return {
            "name": self.name,
            "type": PARAM_TYPES[self.type],
            "default": MASK if self.secret and self.default else self.default,
            "help": self.help,
            "secret": self.secret,
            "min": self.min,
            "max": self.max,
            "choices": list(self.choices) if self.choices is not None else None,
            "pattern": self.pattern,
        }

    def _error(self, why: str) -> DefinitionError:
        return DefinitionError(f"param {self.name!r} {why}", f"params.{self.name}")

    def _refused(self, why: str) -> ParamRefused:
        return ParamRefused(f"param {self.name!r} {why}", f"params.{self.name}")


def _shown(value: Any) -> str:
    """A value as an error message shows it: never longer than a line."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


@dataclass(frozen=True)
class Step:
    """A named step function; ``timeout`` (seconds) overrides the definition's."""

    name: str
    fn: StepFunction
    timeout: float | None = None


@dataclass(frozen=True)
class JobDefinition:
    name: str
    steps: tuple[Step, ...]
    params: tuple[Param, ...] = ()
    description: str = ""
    max_attempts: int = 1  # attempts per step when a worker dies mid-step
    timeout: float | None = None  # seconds each step may run before it is stopped and failed

    @classmethod
    def of(
        cls,
        name: str,
        steps: Iterable[StepFunction | tuple[str, StepFunction] | Step],
        params: Iterable[Param] = (),
        description: str = "",
        max_attempts: int = 1,
        timeout: float | None = None,
    ) -> JobDefinition:
        built = tuple(_step(s) for s in steps)
        names = [s.name for s in built]
        if len(set(names)) != len(names):
            raise ValueError(f"definition {name!r} has duplicate step names: {names}")
        return cls(name, built, tuple(params), description, max_attempts, timeout)

    @property
    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]

    def validate_params(self, raw: Any) -> dict[str, Any]:
        """Return complete, typed params or raise DefinitionError naming the field."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise DefinitionError("params must be a JSON object", "params")
        known = {p.name: p for p in self.params}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise DefinitionError(
                f"unknown param {unknown[0]!r} for {self.name!r}; known: {sorted(known)}",
                f"params.{unknown[0]}",
            )
        return {
            name: p.coerce(raw[name]) if name in raw else p.default for name, p in known.items()
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "steps": self.step_names,
            "max_attempts": self.max_attempts,
            "timeout": self.timeout,
            "params": [p.describe() for p in self.params],
        }

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def secret_values(self, params: dict[str, Any]) -> dict[str, str]:
        """The non-empty values of the secret params among ``params``."""
        return {p.name: params[p.name] for p in self.params if p.secret and params.get(p.name)}


def _step(s: StepFunction | tuple[str, StepFunction] | Step) -> Step:
    if isinstance(s, Step):
        return s
    if isinstance(s, tuple):
        return Step(*s)
    return Step(s.__name__, s)


@dataclass
class Registry:
    definitions: dict[str, JobDefinition] = field(default_factory=dict)

    def register(self, definition: JobDefinition) -> JobDefinition:
        self.definitions[definition.name] = definition
        return definition

    def get(self, name: Any) -> JobDefinition:
        if not isinstance(name, str) or not name:
            raise DefinitionError("definition must be a non-empty string", "definition")
        try:
            return self.definitions[name]
        except KeyError:
            raise DefinitionError(
                f"unknown definition {name!r}; known: {sorted(self.definitions)}", "definition"
            ) from None

    def load(self, module_or_file: str) -> None:
        """Import a module (``pkg.jobs``) or a file (``./jobs.py``) and register
        every JobDefinition found at its top level."""
        path = Path(module_or_file)
        if path.suffix == ".py" and path.exists():
            spec = importlib.util.spec_from_file_location(f"steptrail_jobs_{path.stem}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_or_file)
        for value in vars(module).values():
            if isinstance(value, JobDefinition):
                self.register(value)
