"""Reputation, capabilities and engine loading: pure logic."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernal.config import load_capabilities_file, parse_hub_address
from kernal.engines.base import Engine, UnknownEngineError, available_engines, load_engine
from kernal.engines.simulated import SimulatedEngine
from kernal.trainer.capabilities import BASE_CAPABILITIES, CapabilityCatalog
from kernal.trainer.report import TrustRecord
from kernal.trainer.reputation import ReputationBook


def test_reputation_is_an_ema_of_outcomes() -> None:
    book = ReputationBook(alpha=0.5, initial=0.5)
    assert book.get("peer") == 0.5
    assert book.update("peer", 1.0) == pytest.approx(0.75)
    assert book.update("peer", 0.0) == pytest.approx(0.375)
    assert book.update("peer", 7.0) == pytest.approx(0.6875)  # outcomes are clipped to [0, 1]
    assert book.interactions["peer"] == 3
    assert book.snapshot() == {"peer": 0.6875}


def test_repeated_failures_fall_below_threshold() -> None:
    book = ReputationBook(alpha=0.3, initial=0.5)
    book.update("bad", 0.0)
    assert book.get("bad") < 0.5


def test_a_colluder_taking_turns_is_not_repaired_by_its_honest_turns() -> None:
    """A peer trusted at ~0.9 that poisons once stays below 0.5 through its next honest turns
    (a plain EMA would say 0.63, then climb); 10 clean interactions lift the strike."""
    book = ReputationBook(alpha=0.3, initial=0.5)
    for _ in range(6):
        book.update("sybil", 1.0, measured=True)
    assert book.get("sybil") > 0.9
    assert book.update("sybil", 0.0, measured=True) < 0.5
    for _ in range(9):
        assert book.update("sybil", 1.0, measured=True) < 0.5
    assert book.update("sybil", 1.0, measured=True) > 0.9  # forgiven: the average again
    book.update("sybil", 0.0, measured=True)  # a second strike takes twice as long to lift
    for _ in range(19):
        assert book.update("sybil", 1.0, measured=True) < 0.5
    assert book.update("sybil", 1.0, measured=True) > 0.5


def test_only_measured_harm_strikes() -> None:
    """A collaboration that merely failed (partner lost) is not a strike, nor is a mediocre
    measured outcome."""
    book = ReputationBook(alpha=0.3, initial=0.5)
    for _ in range(6):
        book.update("peer", 1.0, measured=True)
    book.update("peer", 0.0)  # failed, not measured
    book.update("peer", 0.4, measured=True)
    assert not book.struck("peer")
    assert book.get("peer") > 0.5


@pytest.mark.parametrize(("alpha", "initial"), [(0.0, 0.5), (1.5, 0.5), (0.3, -0.1)])
def test_reputation_rejects_bad_parameters(alpha: float, initial: float) -> None:
    with pytest.raises(ValueError):
        ReputationBook(alpha=alpha, initial=initial)


def test_capabilities_of_known_and_unknown_specializations() -> None:
    catalog = CapabilityCatalog()
    assert catalog.capabilities_of("networking")[:3] == BASE_CAPABILITIES
    assert "network_protocols" in catalog.capabilities_of("networking")
    assert catalog.capabilities_of("data_science") == BASE_CAPABILITIES
    lacking = catalog.lacking(catalog.capabilities_of("networking"))
    assert "rendering" in lacking and "network_protocols" not in lacking


def test_capabilities_file_adds_specializations(tmp_path: Path) -> None:
    path = tmp_path / "caps.toml"
    path.write_text('[capabilities]\ndata_science = ["data_ingestion", "analysis"]\n')
    catalog = CapabilityCatalog(load_capabilities_file(path))
    assert catalog.capabilities_of("data_science") == [
        *BASE_CAPABILITIES,
        "data_ingestion",
        "analysis",
    ]


@pytest.mark.parametrize(
    "content", ["[capabilities]\nx = 1\n", "not toml [", "[capabilities]\nx = [1]\n"]
)
def test_bad_capabilities_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "caps.toml"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"caps\.toml"):
        load_capabilities_file(path)


def test_parse_hub_address() -> None:
    assert parse_hub_address("10.0.0.5:7000") == ("10.0.0.5", 7000)
    assert parse_hub_address("hub.local") == ("hub.local", 6000)
    assert parse_hub_address("[::1]:6001") == ("::1", 6001)
    with pytest.raises(ValueError):
        parse_hub_address("host:port")


def test_builtin_engine_is_registered_like_a_plugin() -> None:
    assert "simulated" in available_engines()
    engine = load_engine("simulated")
    assert engine is SimulatedEngine and issubclass(engine, Engine)
    with pytest.raises(UnknownEngineError, match=r"available: .*simulated"):
        load_engine("no_such_engine")


def test_seeding_from_the_hub_never_starts_a_peer_above_initial() -> None:
    book = ReputationBook(alpha=0.3, initial=0.5)
    book.seed("whitewasher", 0.1)
    book.seed("star", 0.9)
    book.seed("unrated", None)
    assert book.get("whitewasher") == 0.1
    assert book.get("star") == 0.5
    assert "unrated" not in book.scores
    book.update("star", 1.0)
    book.seed("star", 0.0)  # known peers keep their own record: a standing does not cap them
    assert book.get("star") > 0.5


def test_the_hubs_doubt_of_a_rater_caps_a_known_peer_until_lifted() -> None:
    book = ReputationBook(alpha=0.3, initial=0.5)
    for _ in range(3):
        book.update("colluder", 1.0, measured=True)
    trusted = book.get("colluder")
    assert trusted > 0.5
    book.seed("colluder", 0.1, credibility=0.1)  # caught contradicting everyone at the hub
    assert book.get("colluder") == 0.1
    assert book.snapshot()["colluder"] == 0.1
    assert [(peer, trust) for _, peer, trust in book.hub_caps] == [("colluder", 0.1)]
    assert book.update("colluder", 1.0, measured=True) == 0.1  # its good turns do not lift it
    book.seed("colluder", 0.8, credibility=None)  # the hub no longer doubts it
    assert book.get("colluder") > trusted
    book.seed("rater", 0.6, credibility=0.7)  # doubted a little: not below initial, no cap
    assert book.get("rater") == 0.5


def test_a_cap_from_the_hub_counts_at_the_interactions_made_so_far() -> None:
    record = TrustRecord(
        threshold=0.5,
        initial=0.5,
        history=[(1.0, "s", 0.65), (2.0, "s", 0.75), (4.0, "s", 0.1)],
        hub_caps=[(3.0, "s", 0.1)],
    )
    assert record.interactions_to_distrust("s") == 2


def test_engine_options_are_typed_and_checked() -> None:
    from kernal.engines.base import EngineOptions, EngineOptionsError
    from kernal.engines.learning import LearningEngine

    parsed = LearningEngine.parse_options({"split": "iid", "shard_size": "120"})
    assert parsed.model_dump()["shard_size"] == 120  # text from the command line, converted
    for bad, named in (
        ({"split": "halves"}, "split"),
        ({"merge": "median"}, "merge"),
        ({"shard_size": 0}, "shard_size"),
        ({"typo": 1}, "typo: unknown option"),
    ):
        with pytest.raises(EngineOptionsError, match=named):
            LearningEngine.parse_options(bad)

    class Mine(EngineOptions):
        depth: int = 3

    class MyEngine(SimulatedEngine):
        name = "mine"
        Options = Mine

    assert MyEngine.parse_options({"depth": "5"}) == Mine(depth=5)
    with pytest.raises(EngineOptionsError, match="its options: depth"):
        MyEngine.parse_options({"width": 2})
    with pytest.raises(EngineOptionsError, match="unknown option"):
        SimulatedEngine.parse_options({"split": "iid"})


def test_a_standings_round_names_the_known_peers_in_sorted_batches() -> None:
    from kernal.trainer import policy

    known = {"AI_c", "AI_a", "AI_Me", "AI_b", "AI_d", "AI_e"}
    assert policy.standings_batches(known, "AI_Me", 2) == [
        ["AI_a", "AI_b"],
        ["AI_c", "AI_d"],
        ["AI_e"],
    ]
    assert policy.standings_batches({"AI_Me"}, "AI_Me", 1000) == []  # nobody to ask about


async def test_standings_pages_update_known_peers_only_and_slow_down_on_a_big_hub() -> None:
    """An ``AIS`` page refreshes the hub's word on peers the trainer knows of, not on the
    thousands it may never meet; and the more AIs the hub counts, the rarer ``LIST_AIS``."""
    from kernal.config import TrainerSettings
    from kernal.protocol.messages import AiInfo, Ais
    from kernal.trainer import policy
    from kernal.trainer.trainer import Trainer

    trainer = Trainer(
        TrainerSettings(ai_id="AI_Me", specialization="networking", token="t", engine="simulated")
    )
    trainer.peers = {"AI_Known": "graphics"}
    few = policy.standings_every(len(trainer.peers), trainer._hub_ais)
    page = Ais(
        ais=[
            AiInfo(
                ai_id=ai_id,
                specialization="graphics",
                capabilities=[],
                reputation=0.2,
                credibility=0.1,
            )
            for ai_id in ("AI_Known", "AI_Stranger", "AI_Me")
        ],
        active_total=5000,
    )
    await trainer._on_message(page)
    assert trainer.reputation.get("AI_Known") == 0.1  # capped by the hub's doubt
    assert "AI_Stranger" not in trainer.reputation.scores
    assert trainer.reputation.get("AI_Stranger") == 0.5
    assert "AI_Me" not in trainer.reputation.scores
    assert (
        policy.standings_every(len(trainer.peers), trainer._hub_ais) > 10 * few
    )  # 5,000 AIs: far fewer rounds of pages
