"""The per-kind descriptors of the SQL backend: one :class:`ItemTable` per :class:`ItemKind`,
and each agrees with its record class and its table, which the generic converters rely on."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kernal.storage import ComponentRecord, ItemKind
from kernal.storage.rows import (
    COMPONENTS,
    ITEM_TABLES,
    PATTERNS,
    ItemTable,
    item_row,
    item_table,
)


def test_one_table_per_kind() -> None:
    assert ITEM_TABLES == {ItemKind.PATTERN: PATTERNS, ItemKind.COMPONENT: COMPONENTS}
    assert item_table("component") is COMPONENTS
    with pytest.raises(ValueError):
        item_table("widget")


@pytest.mark.parametrize("spec", list(ITEM_TABLES.values()), ids=lambda spec: spec.kind.value)
def test_record_fields_are_the_table_columns(spec: ItemTable[Any]) -> None:
    fields = [f.name for f in dataclasses.fields(spec.record)]
    assert fields == [c.name for c in spec.table.columns]
    assert (spec.id_column, spec.data_column) == (f"{spec.kind}_id", f"{spec.kind}_data")
    assert spec.key is spec.table.c[spec.id_column]
    assert spec.key.primary_key
    assert spec.has_quality == ("quality_score" in fields)
    assert spec.record.kind is spec.kind


def test_item_row_encodes_only_the_data() -> None:
    # The way back (item_record) is exercised on real databases by the contract tests.
    record = ComponentRecord("c", {"code": "é"}, "bob", 2.5, 0.75, 4)
    assert item_row(COMPONENTS, record) == {
        "component_id": "c",
        "component_data": '{"code":"é"}',
        "contributor": "bob",
        "timestamp": 2.5,
        "quality_score": 0.75,
        "usage_count": 4,
    }
