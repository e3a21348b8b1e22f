"""``Store.search_items`` on SQLite and PostgreSQL (the ``store`` fixture runs each test on
both): every word must appear in the id, contributor or data; ASCII case ignored; newest first;
components shared with one AI left out; LIKE's wildcards are plain characters."""

from __future__ import annotations

from kernal.storage import ItemKind
from kernal.storage.sql import SqlStore
from tests.storage.test_store_contract import T0, component, pattern


async def test_every_word_in_id_contributor_or_data(store: SqlStore) -> None:
    await store.add_pattern(pattern("tcp-window", "alice", T0, topic="TCP Window Scaling"))
    await store.add_pattern(pattern("udp-burst", "bob", T0 + 1, topic="UDP bursts"))
    await store.add_pattern(pattern("tcp-nagle", "bob", T0 + 2, topic="Nagle"))

    async def ids(*words: str) -> list[str]:
        found = await store.search_items(ItemKind.PATTERN, words, 10)
        return [record.item_id for record in found]

    assert await ids("tcp") == ["tcp-nagle", "tcp-window"]  # newest first
    assert await ids("WINDOW", "scaling") == ["tcp-window"]  # data, any case
    assert await ids("bob") == ["tcp-nagle", "udp-burst"]  # contributor
    assert await ids("tcp", "bob") == ["tcp-nagle"]  # every word
    assert await ids("audio") == []
    assert await ids() == ["tcp-nagle", "udp-burst", "tcp-window"]  # no words: recent
    assert [r.item_id for r in await store.search_items(ItemKind.PATTERN, ["tcp"], 1)] == [
        "tcp-nagle"
    ]
    assert await store.search_items(ItemKind.PATTERN, ["tcp"], 0) == []


async def test_wildcards_are_literal(store: SqlStore) -> None:
    await store.add_pattern(pattern("p1", topic="100% sure"))
    await store.add_pattern(pattern("p2", topic="a_b"))
    await store.add_pattern(pattern("p3", topic="axb 100 sure"))
    found = await store.search_items(ItemKind.PATTERN, ["100%"], 10)
    assert [r.item_id for r in found] == ["p1"]
    found = await store.search_items(ItemKind.PATTERN, ["a_b"], 10)
    assert [r.item_id for r in found] == ["p2"]


async def test_components_shared_with_one_ai_are_left_out(store: SqlStore) -> None:
    await store.add_component(component("shader-public"))
    await store.add_component(component("shader-private"), recipient="bob")
    found = await store.search_items(ItemKind.COMPONENT, ["shader"], 10)
    assert [r.item_id for r in found] == ["shader-public"]
    assert await store.search_items(ItemKind.PATTERN, ["shader"], 10) == []  # kinds apart
