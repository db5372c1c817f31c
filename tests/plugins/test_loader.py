"""Loading custom plugins (``plugins`` + ``plugin_path``): what loads, and the message for
each way a plugin can be wrong (every one stops the start)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from gateway import registry
from gateway.plugins.loader import PluginLoadError

FIXTURES = str(Path(__file__).parent / "fixtures")

SCHEMA = '''
from dataclasses import dataclass
from gateway.plugins.base import PluginSpec

@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    level: int = 1

PLUGIN = PluginSpec.define({name!r}, Config)
'''
HANDLER = '''
from gateway.plugins.runtime import Handler

class One(Handler):
    PRIORITY = 7
    VERSION = "3.0.0"
'''


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))


def plugin(root: Path, name: str, schema: str | None = None, handler: str = HANDLER) -> str:
    package = root / "ramparts_plugins" / name.replace("-", "_")
    package.mkdir(parents=True)
    (package / "schema.py").write_text(schema if schema is not None
                                       else SCHEMA.format(name=name))
    (package / "handler.py").write_text(handler)
    return str(root)


def test_bundled_off_and_custom() -> None:
    assert set(registry.build(["off"]).handlers) == set()
    assert set(registry.build().handlers) == {"mtls-auth", "acl"}
    reg = registry.build(["acl", "echo-conf"], [FIXTURES])
    assert set(reg.enabled) == set(reg.handlers) == {"acl", "echo-conf"}
    spec = reg.enabled["echo-conf"]
    assert (spec.priority, spec.version) == (900, "2.1.0")  # the handler's PRIORITY, VERSION
    assert reg.handlers["echo-conf"].__module__ == "ramparts_plugins.echo_conf.handler"
    assert reg.context().plugin_schemas["echo-conf"] is spec.config


def test_a_dash_in_the_name_is_an_underscore_in_the_package(tmp_path: Path) -> None:
    reg = registry.build(["my-first-plugin"], [plugin(tmp_path, "my-first-plugin")])
    assert reg.enabled["my-first-plugin"].priority == 7


def test_not_installed() -> None:
    with pytest.raises(PluginLoadError, match="^" + re.escape(
            "ghost plugin is enabled but not installed: no module ramparts_plugins.ghost.schema")):
        registry.build(["bundled", "ghost"])


@pytest.mark.parametrize(("name", "schema", "handler", "message"), [
    ("no-spec", "", HANDLER, "ramparts_plugins.no_spec.schema must define PLUGIN"),
    ("renamed", SCHEMA.format(name="other"), HANDLER, "its schema is named 'other'"),
    ("two", None, HANDLER + "\nclass Two(One):\n    pass\n", "exactly one subclass"),
    ("prio", None, HANDLER.replace("PRIORITY = 7", "PRIORITY = '7'"), "PRIORITY must be an"),
    ("vers", None, HANDLER.replace('VERSION = "3.0.0"', "VERSION = 3"), "VERSION must be"),
    ("async-head", None, HANDLER + "\n    async def header_filter(self, kong):\n"
     "        pass\n", "header_filter must be synchronous"),
    ("needs", None, "import not_a_module_anywhere\n" + HANDLER,
     "ramparts_plugins.needs.handler failed to import: No module named "
     "'not_a_module_anywhere'"),
    ("typo", None, HANDLER + "\nsyntax error here\n", "failed to import: SyntaxError"),
    ("Upper", None, HANDLER, "a plugin name is lower-case letters"),
])
def test_a_bad_plugin_is_refused(tmp_path: Path, name: str, schema: str | None,
                                 handler: str, message: str) -> None:
    path = plugin(tmp_path, name, schema, handler)
    with pytest.raises(PluginLoadError, match=re.escape(message)):
        registry.build(["bundled", name], [path])


def test_custom_entities_are_refused(tmp_path: Path) -> None:
    schema = SCHEMA.format(name="daos") + (
        "\nimport dataclasses\nfrom gateway.plugins.acl.schema import ACLS\n"
        "PLUGIN = dataclasses.replace(PLUGIN, entities=(ACLS,))\n")
    with pytest.raises(PluginLoadError, match="cannot declare entities"):
        registry.build(["daos"], [plugin(tmp_path, "daos", schema)])
