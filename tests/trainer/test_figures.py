"""The TRAINER_REPORT a trainer builds (pure), and which trainers send one to a real hub."""

from __future__ import annotations

import asyncio

from kernal.engines.base import Figures
from kernal.hub.server import Hub
from kernal.protocol.messages import MAX_TRUST_PEERS, KnowledgeBase, State
from kernal.trainer.figures import hub_takes_reports, trainer_report
from kernal.trainer.reputation import ReputationBook
from tests.conftest import HubFactory
from tests.trainer.test_trainer import SPEED, _trainer


def _state(**fields: object) -> State:
    empty = KnowledgeBase(
        shared_patterns=0, shared_components=0, recent_patterns=[], recent_components=[]
    )
    return State(active_ais=[], knowledge_base=empty, **fields)  # type: ignore[arg-type]


def test_only_hubs_that_list_the_feature_get_reports() -> None:
    assert hub_takes_reports(_state(features=["trainer_report"]))
    assert not hub_takes_reports(_state())  # an older hub: no features at all
    assert not hub_takes_reports(_state(features=["something_else"]))
    assert not hub_takes_reports(None)


def test_report_holds_the_figures_and_judged_peers_first() -> None:
    book = ReputationBook(initial=0.5)
    for i in range(MAX_TRUST_PEERS + 10):
        book.seed(f"seeded_{i:04d}", 0.5)
    book.update("zz_partner", 0.0)
    message = trainer_report(
        Figures(accuracy=0.8, local_only_accuracy=0.7, merges_kept=2, merges_rejected=1),
        book,
        {"zz_refused": 3, "zz_partner": 1},
        final=True,
    )
    assert (message.accuracy, message.local_only_accuracy, message.final) == (0.8, 0.7, True)
    assert (message.merges_kept, message.merges_rejected) == (2, 1)
    assert len(message.trust) == MAX_TRUST_PEERS  # bounded, as the hub requires
    # Peers it worked with or refused are never cut for peers it only heard of.
    assert message.trust["zz_partner"] == round(0.7 * 0.5, 4)
    assert message.trust["zz_refused"] == 0.5  # refused at the initial reputation
    assert {peer: r.count for peer, r in message.rejected.items()} == {
        "zz_refused": 3,
        "zz_partner": 1,
    }
    assert all(r.reason == "low reputation" for r in message.rejected.values())


def test_report_says_which_models_were_refused_and_why() -> None:
    long_reason = "incompatible model " + "x" * 300 + "\nsecond line"
    figures = Figures(
        accuracy=0.8,
        merges_rejected=4,
        refused_merges={"p1": (1, long_reason), "p2": (3, "worse on our validation data")},
    )
    message = trainer_report(figures, ReputationBook(initial=0.5), {})
    assert list(message.refused_merges) == ["p2", "p1"]  # the most refused first
    assert message.refused_merges["p2"].count == 3
    assert message.refused_merges["p2"].reason == "worse on our validation data"
    cut = message.refused_merges["p1"].reason
    assert len(cut) == 128 and cut.startswith("incompatible model x") and "\n" not in cut


async def test_learning_trainers_report_and_simulated_ones_do_not(
    make_hub: HubFactory,
) -> None:
    hub: Hub = await make_hub(speed=SPEED)
    learner = _trainer(hub, 1, "networking", engine="learning")
    simulated = _trainer(hub, 2, "graphics")
    await asyncio.gather(learner.run(duration=40), simulated.run(duration=40))
    reports = await hub.store.trainer_reports()
    assert {r.ai_id for r in reports} == {"AI_Node_1"}  # the simulated engine measures nothing
    assert reports[-1].final and not any(r.final for r in reports[:-1])
    assert reports[-1].accuracy == learner.engine.summary()["final_accuracy"]
    assert learner.stats.hub_errors == []
    # What the SDK decided by: the STATE of this hub lists the feature.
    assert learner.client.supports("trainer_report")
    assert not learner.client.supports("teleport")
