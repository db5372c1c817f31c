"""Custom plugins: the names of the ``plugins`` setting that are not bundled.

Kong loads ``kong.plugins.<name>.handler`` and ``.schema`` from ``lua_package_path``; a
Ramparts plugin ``my-plugin`` is the Python package ``ramparts_plugins.my_plugin`` (``-``
becomes ``_``) with ``schema.py`` (``PLUGIN``, a ``PluginSpec`` named ``my-plugin``) and
``handler.py`` (one ``Handler`` subclass with Kong's ``PRIORITY`` and ``VERSION``), found on
``sys.path`` after the ``plugin_path`` directories. ``ramparts_plugins`` is a namespace
package (no ``__init__.py``), so plugins may live in several directories.

Loaded once, at start: anything wrong is a ``PluginLoadError`` that stops the start.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

from gateway.plugins.base import PluginSpec
from gateway.plugins.runtime import PHASES, Handler

NAMESPACE = "ramparts_plugins"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SYNC_PHASES = ("certificate", "header_filter", "body_filter")


class PluginLoadError(ValueError):
    """A plugin of the ``plugins`` setting that cannot be used (the message says why)."""


@dataclass(frozen=True, slots=True)
class LoadedPlugin:
    spec: PluginSpec
    handler: type[Handler]


def module_name(name: str) -> str:
    return f"{NAMESPACE}.{name.replace('-', '_')}"


def extend_path(directories: Iterable[str]) -> None:
    """``plugin_path``: searched before the rest of ``sys.path``, in the order given."""
    for directory in reversed(tuple(directories)):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    importlib.invalidate_caches()


def load(name: str) -> LoadedPlugin:
    if not NAME.match(name):
        raise PluginLoadError(f"plugin '{name}': a plugin name is lower-case letters, "
                              "digits, '-' and '_'")
    package = module_name(name)
    schema = _import(name, f"{package}.schema")
    handler = _handler(name, _import(name, f"{package}.handler"))
    spec = getattr(schema, "PLUGIN", None)
    if not isinstance(spec, PluginSpec):
        raise PluginLoadError(f"plugin '{name}': {package}.schema must define PLUGIN, a "
                              "gateway.plugins.base.PluginSpec")
    if spec.name != name:
        raise PluginLoadError(f"plugin '{name}': its schema is named '{spec.name}'")
    if spec.entities:
        raise PluginLoadError(f"plugin '{name}': custom plugins cannot declare entities "
                              "(their tables would need a migration)")
    return LoadedPlugin(dataclasses.replace(spec, priority=handler.PRIORITY,
                                            version=handler.VERSION), handler)


def _import(name: str, module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            # Kong's words: "<name> plugin is enabled but not installed"
            raise PluginLoadError(
                f"{name} plugin is enabled but not installed: no module {module} on "
                "plugin_path or sys.path") from exc
        raise PluginLoadError(f"plugin '{name}': {module} failed to import: {exc}") from exc
    except Exception as exc:  # a syntax error or a failing import inside the plugin
        raise PluginLoadError(f"plugin '{name}': {module} failed to import: "
                              f"{type(exc).__name__}: {exc}") from exc


def _handler(name: str, module: ModuleType) -> type[Handler]:
    found = [value for value in vars(module).values()
             if isinstance(value, type) and issubclass(value, Handler) and value is not Handler
             and value.__module__ == module.__name__]
    if len(found) != 1:
        raise PluginLoadError(f"plugin '{name}': {module.__name__} must define exactly one "
                              f"subclass of gateway.plugins.runtime.Handler (found "
                              f"{len(found)})")
    handler = found[0]
    if not isinstance(handler.PRIORITY, int) or isinstance(handler.PRIORITY, bool):
        raise PluginLoadError(f"plugin '{name}': PRIORITY must be an integer")
    if not isinstance(handler.VERSION, str) or not handler.VERSION:
        raise PluginLoadError(f"plugin '{name}': VERSION must be a non-empty string")
    for phase in PHASES:
        method = getattr(handler, phase)
        if not callable(method):
            raise PluginLoadError(f"plugin '{name}': {phase} must be a method")
        if phase in SYNC_PHASES and inspect.iscoroutinefunction(method):
            raise PluginLoadError(f"plugin '{name}': {phase} must be synchronous")
    return handler
