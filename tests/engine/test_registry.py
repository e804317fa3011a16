"""fipo_engine/registry.py: the Registry (lazy completion, declared names) and the RegistryName field type."""

from __future__ import annotations

import sys
import types
from typing import Annotated

import pydantic
import pytest

from fipo_engine.registry import Registry, RegistryError, RegistryName


def test_a_registry_imports_its_modules_before_the_first_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoever reads first sees the built-ins: the registering module is imported on demand."""
    registry: Registry = Registry("widget", modules=("fake_widgets",))
    imported: list[str] = []

    class Finder:
        """Stands in for the module ``fake_widgets``: importing it registers ``spanner``."""

        @staticmethod
        def find_spec(name: str, path: object, target: object = None) -> object:
            if name != "fake_widgets":
                return None
            import importlib.machinery

            return importlib.machinery.ModuleSpec(name, Finder)

        @staticmethod
        def create_module(spec: object) -> types.ModuleType:
            return types.ModuleType("fake_widgets")

        @staticmethod
        def exec_module(module: types.ModuleType) -> None:
            imported.append(module.__name__)
            registry.register("spanner")(len)

    monkeypatch.setattr(sys, "meta_path", [Finder, *sys.meta_path])
    monkeypatch.delitem(sys.modules, "fake_widgets", raising=False)
    assert imported == []  # building the registry imports nothing
    assert registry.names() == ["spanner"] and registry["spanner"] is len and "spanner" in registry
    assert imported == ["fake_widgets"]  # once
    registry.names()
    assert imported == ["fake_widgets"]


def test_declared_names_are_valid_before_their_implementation_registers() -> None:
    """The launchers' case: the engine declares the names, the worker registers the objects."""
    registry: Registry = Registry("launcher", declared=("local", "ray"))
    assert registry.names() == ["local", "ray"] and "ray" in registry and len(registry) == 2
    with pytest.raises(RegistryError, match="'ray' is declared but not registered"):
        registry.get("ray")
    marker = object()
    assert registry.register("ray")(marker) is marker and registry["ray"] is marker
    registry.register("fake")(marker)  # names beyond the declared ones may be added (test doubles)
    assert registry.names() == ["fake", "local", "ray"]
    with pytest.raises(RegistryError, match="unknown launcher 'slurm'; valid names: fake, local, ray"):
        registry.get("slurm")
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("ray")(marker)


def test_registry_name_checks_and_documents_the_names_at_use_time() -> None:
    registry: Registry = Registry("colour")
    registry.register("red")(str)

    class Paint(pydantic.BaseModel):
        colour: Annotated[str, RegistryName(registry)] = pydantic.Field("red", description="Which colour.")

    assert Paint(colour="red").colour == "red"
    with pytest.raises(pydantic.ValidationError) as err:
        Paint(colour="blue")
    (error,) = err.value.errors()
    assert error["loc"] == ("colour",) and error["type"] == "unknown_name"
    assert error["msg"] == "unknown colour 'blue'; valid: red"
    registry.register("blue")(str)  # read when validating and when building the schema, not at class creation
    assert Paint(colour="blue").colour == "blue"
    assert Paint.model_json_schema()["properties"]["colour"] == {
        "default": "red", "description": "Which colour.", "enum": ["blue", "red"], "title": "Colour",
        "type": "string"}
    # outside a model there is no field name: the message names the registry's kind
    with pytest.raises(pydantic.ValidationError, match="unknown colour 'green'; valid: blue, red"):
        pydantic.TypeAdapter(Annotated[str, RegistryName(registry)]).validate_python("green")
    assert repr(RegistryName(registry)) == "RegistryName('colour')"


def test_config_fields_and_launchers_share_one_registry() -> None:
    """``launcher.backend`` is checked against the registry the worker's launchers fill."""
    from fipo_engine.registry import LAUNCHERS
    from worker.launchers import LauncherError, get_launcher, launcher_names

    assert {"local", "ray"} <= set(launcher_names())
    assert get_launcher("local").name == "local" and get_launcher("ray").name == "ray"
    assert LAUNCHERS["local"] is get_launcher("local")
    with pytest.raises(LauncherError, match=r"unknown launcher 'slurm'; valid names: .*local, ray"):
        get_launcher("slurm")
