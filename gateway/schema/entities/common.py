"""Field aliases every entity shares (ids, timestamps, tags)."""

from __future__ import annotations

from typing import Annotated

from gateway.schema.fields import Auto, Timestamp, Uuid

Id = Annotated[str, Uuid(), Auto()]
CreatedAt = Annotated[int, Timestamp(), Auto()]
UpdatedAt = Annotated[int, Timestamp(update=True), Auto()]
CreatedAtMs = Annotated[float, Timestamp(ms=True), Auto()]
UpdatedAtMs = Annotated[float, Timestamp(ms=True, update=True), Auto()]
