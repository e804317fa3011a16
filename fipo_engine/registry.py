"""Every name a run config resolves to code, and the one field type that checks such a name.

A config string such as ``algorithm.policy_loss: "fipo"`` or ``reward.name: "math"`` selects a
function from a ``Registry``. The config field is declared as ``registry_name(REG)``,
so the registry is the only list of valid names: validation rejects any other name (naming the
field and listing the valid ones), and the JSON Schema, which the web form and the API docs read,
carries the same names as its ``enum``.

This module is a leaf: it imports nothing from the project, so ``fipo_engine.config`` can import
every registry without an import cycle. A registry is filled by the module that implements its
entries (``@GRADERS.register("math")`` in ``rewards/graders.py``); ``modules`` names those modules,
and the registry imports them the first time anyone reads it, so it is complete whoever asks
first. The launchers are implemented in ``worker``, which depends on this package and not the other
way round, so their names are ``declared`` here and the worker registers the implementations.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any, Generic, TypeVar

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

T = TypeVar("T")


class RegistryError(KeyError):
    """Raised for a duplicate registration or an unknown name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Named entries: ``@registry.register("name")`` adds one, ``registry["name"]`` reads it.

    ``modules`` are imported before the first read: they register the built-in entries, so a
    reader never sees a registry that is incomplete because of import order. ``declared`` names
    are valid before anything registered them, for entries implemented in a package this one
    must not import (the launchers); ``get`` of such a name fails until its module registered it.
    """

    def __init__(self, kind: str, *, modules: Iterable[str] = (), declared: Iterable[str] = ()) -> None:
        self.kind = kind
        self._modules = tuple(modules)
        self._declared = frozenset(declared)
        self._items: dict[str, T] = {}
        self._loaded = not self._modules

    def _load(self) -> None:
        """Import the modules that register the built-in entries (once; an import error propagates)."""
        if not self._loaded:
            for module in self._modules:
                importlib.import_module(module)
            self._loaded = True

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding an entry under ``name``; a name taken twice raises ``RegistryError``."""

        def decorator(entry: T) -> T:
            if name in self._items:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._items[name] = entry
            return entry

        return decorator

    def unregister(self, name: str) -> None:
        """Remove an entry added with ``register`` (a plugin or a test's stand-in that lives for a while).

        Without it, a stand-in registered by one test stays valid, and listed, in every later one.
        """
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name fails listing the valid ones."""
        self._load()
        try:
            return self._items[name]
        except KeyError:
            if name in self._declared:
                raise RegistryError(f"{self.kind} {name!r} is declared but not registered: import the module "
                                    "that implements it") from None
            raise RegistryError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}") from None

    __getitem__ = get

    def names(self) -> list[str]:
        """Every valid name, sorted (the order of the JSON Schema's ``enum`` and of error messages)."""
        self._load()
        return sorted(self._declared | self._items.keys())

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items or name in self._declared

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


class RegistryName:
    """Pydantic metadata for a ``str`` field whose value must be a name in ``registry``.

    Used through ``registry_name(GRADERS)`` (below), which is ``Annotated[str, RegistryName(GRADERS)]``: the type stays ``str`` for readers and type
    checkers, and pydantic gets the check and the schema from the two hooks below. Both read the
    registry when they run (not when the model class is built), so entries registered later count.
    """

    __slots__ = ("registry",)

    def __init__(self, registry: Registry[Any]) -> None:
        self.registry = registry

    def __repr__(self) -> str:
        return f"RegistryName({self.registry.kind!r})"

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.with_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["enum"] = self.registry.names()
        return json_schema

    def _check(self, value: str, info: ValidationInfo) -> str:
        """Reject a name the registry lacks; pydantic adds the field's path to the error's ``loc``."""
        if value not in self.registry:
            raise PydanticCustomError(
                "unknown_name", "unknown {field} {name}; valid: {valid}",
                {"field": info.field_name or self.registry.kind, "name": repr(value),
                 "valid": ", ".join(self.registry.names())},
            )
        return value


def registry_name(registry: Registry[Any]) -> Any:
    """The field type for "a name in ``registry``": ``Annotated[str, RegistryName(registry)]``.

    The one way a config declares such a field (``reward.name: registry_name(GRADERS)``): validation
    rejects an unknown name with the field's path and the valid names, and the JSON Schema (the run
    form, the API docs) offers exactly the registered names as its ``enum``.
    """
    return Annotated[str, RegistryName(registry)]


# ------------------------------------------------------------------ the registries a run config reads
ADVANTAGE_ESTIMATORS: Registry[Callable[..., Any]] = Registry(
    "advantage estimator", modules=("fipo_engine.algorithms.advantages",))
POLICY_LOSSES: Registry[Callable[..., Any]] = Registry("policy loss", modules=("fipo_engine.algorithms.losses",))
AGGREGATIONS: Registry[Callable[..., Any]] = Registry(
    "loss aggregation mode", modules=("fipo_engine.algorithms.aggregation",))
GRADERS: Registry[Callable[..., Any]] = Registry("grader", modules=("fipo_engine.rewards.graders",))
DATA_SOURCES: Registry[Callable[..., Any]] = Registry("data source", modules=("fipo_engine.data.sources",))
# Implemented in worker/launchers/ (``register_launcher``); worker depends on fipo_engine, so the
# names the run config accepts are declared here. Add a launcher: its module, and its name here.
LAUNCHERS: Registry[Any] = Registry("launcher", declared=("local", "ray"))
