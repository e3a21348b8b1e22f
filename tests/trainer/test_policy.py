"""The trainer's decisions as pure functions (shared with the offline simulator)."""

from __future__ import annotations

from kernal.trainer import policy


def decide(**overrides: object) -> policy.Decision:
    args: dict[str, object] = {
        "trained": True,
        "trust": 0.6,
        "threshold": 0.5,
        "is_complementary": True,
        "active": 0,
    }
    args.update(overrides)
    return policy.consider_request(**args)  # type: ignore[arg-type]


def test_accepts_a_trusted_complementary_peer() -> None:
    assert decide() == policy.ACCEPT


def test_rejections_in_order_with_reasons() -> None:
    untrained = decide(trained=False, trust=0.0)
    assert (untrained.accept, untrained.reason) == (False, "still training locally")
    distrusted = decide(trust=0.49)
    assert not distrusted.accept and distrusted.low_trust
    assert distrusted.reason == "reputation 0.49 below trust threshold 0.5"
    busy = decide(is_complementary=False, active=policy.MAX_ACTIVE_FOR_ACCEPT)
    assert (busy.accept, busy.low_trust) == (False, False)
    assert busy.reason == "busy with 3 collaborations"
    # A complementary peer is accepted however busy we are.
    assert decide(active=10).accept


def test_complementary_needs_another_specialization_offering_something_new() -> None:
    assert policy.complementary("networking", ["tcp"], "graphics", ["gpu"])
    assert not policy.complementary("networking", ["tcp"], "networking", ["gpu"])
    assert not policy.complementary("networking", ["tcp", "gpu"], "graphics", ["gpu"])


def test_asks_for_work_only_when_trained_with_peers_and_not_busy() -> None:
    assert policy.should_request(trained=True, busy=1, peers=3)
    assert not policy.should_request(trained=True, busy=2, peers=3)
    assert not policy.should_request(trained=False, busy=0, peers=3)
    assert not policy.should_request(trained=True, busy=0, peers=0)


def test_a_threshold_above_the_initial_reputation_is_a_trap() -> None:
    from kernal.trainer.policy import threshold_trap

    assert threshold_trap(0.5, 0.5) is None and threshold_trap(0.3, 0.5) is None
    message = threshold_trap(0.6, 0.5)
    assert message is not None
    assert "accept no one" in message and "--trust-threshold" in message
    assert "--initial-reputation" in message
