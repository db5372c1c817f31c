"""What a plugin declares: its config schema, priority, scope limits and its own entities."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.schema.compile import EntityCheck, RecordSchema, compile_record
from gateway.schema.entity import EntitySchema
from gateway.schema.typedefs import HTTP_PROTOCOLS


@dataclass(frozen=True)
class PluginSpec:
    """One plugin. ``checks`` are top-level entity checks over the whole plugin row (Kong's
    plugin ``entity_checks`` with dotted ``config.x`` paths)."""

    name: str
    config: RecordSchema
    version: str = ""   # custom plugins: the handler's VERSION and PRIORITY (plugins/loader.py)
    priority: int = 0
    protocols: tuple[str, ...] = HTTP_PROTOCOLS
    allowed_protocols: tuple[str, ...] = (*HTTP_PROTOCOLS, "ws", "wss")
    no_consumer: bool = False
    no_route: bool = False
    no_service: bool = False
    checks: tuple[EntityCheck, ...] = ()
    entities: tuple[EntitySchema, ...] = ()

    @classmethod
    def define(cls, name: str, config: type, **options: object) -> PluginSpec:
        return cls(name=name, config=compile_record(config), **options)  # type: ignore[arg-type]
