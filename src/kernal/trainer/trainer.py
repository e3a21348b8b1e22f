"""The reference trainer: learns locally, shares, asks complementary peers to collaborate,
accepts by reputation, and delivers what collaborations produce.

All timings are scenario seconds run through the settings' clock, so ``speed=60`` plays a
3-minute run in 3 seconds. What is shared and built comes from a pluggable :class:`Engine`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from typing import Any

from kernal.config import TrainerSettings
from kernal.engines.base import CollaborationTask, Engine, EngineContext, load_engine
from kernal.protocol.messages import (
    LIST_AIS_MAX,
    AiJoined,
    AiLeft,
    Ais,
    CollaborationAccept,
    CollaborationProgress,
    CollaborationReject,
    CollaborationRequest,
    ComponentShare,
    Feedback,
    ListAis,
    PatternShare,
    RelayedCollaborationAccept,
    RelayedCollaborationComplete,
    RelayedCollaborationFailed,
    RelayedCollaborationProgress,
    RelayedCollaborationReject,
    RelayedCollaborationRequest,
    RelayedComponentShare,
    RelayedPatternShare,
    RequestTerms,
    State,
)
from kernal.tls import client_context
from kernal.trainer import outcome, policy
from kernal.trainer.capabilities import CapabilityCatalog
from kernal.trainer.client import (
    AuthenticationError,
    ConnectionLost,
    HubClient,
    HubError,
    Incoming,
)
from kernal.trainer.figures import send_report
from kernal.trainer.outcome import TrainerStats
from kernal.trainer.report import TrainerReport
from kernal.trainer.reputation import ReputationBook

log = logging.getLogger("kernal.trainer")

TRAINING_TIME = 2.0  # scenario seconds of local training before sharing starts
PATTERN_INTERVAL = 10.0
TICK = 5.0  # collaboration requests and progress
REQUEST_PATIENCE = 2  # ticks a request counts as pending work while nobody answers it
STOP_TIMEOUT = 10.0  # real seconds run() waits for its tasks to finish when stopping
REPORT_INTERVAL = 5.0  # scenario seconds between TRAINER_REPORTs (the hub's stats interval)


@dataclass
class ActiveCollaboration:
    collaboration_id: str
    partner: str
    role: str  # "requester" or "acceptor": the acceptor drives progress and delivers
    request: RequestTerms
    progress: float = 0.0
    assessed: bool = False  # the partner's contribution was measured and scored already


class Trainer:
    """One trainer's behaviour. ``await trainer.run(duration)`` returns its report. The engine
    is ``engine`` if given, else an instance of ``engine_class``, else the one registered
    under ``settings.engine``."""

    def __init__(
        self,
        settings: TrainerSettings,
        *,
        engine: Engine | None = None,
        engine_class: type[Engine] | None = None,
        patterns_to_share: int = 3,
        components_to_share: int = 2,
    ) -> None:
        self.settings = settings
        self.ai_id = settings.ai_id
        self.clock = settings.clock
        self.catalog = CapabilityCatalog(settings.extra_capabilities)
        self.capabilities = self.catalog.capabilities_of(settings.specialization)
        # Seeded: a seeded run replays, ids included. Unseeded: fresh ids on every run, so a
        # restarted trainer's shares are new shares, not duplicates of the last run's.
        seeded = settings.seed is not None
        self.rng = random.Random(f"{settings.seed}:{settings.ai_id}" if seeded else None)
        context = EngineContext(
            settings.ai_id,
            settings.specialization,
            self.capabilities,
            settings.seed,
            self.rng,
            settings.engine_options,
        )
        self.engine = engine or (engine_class or load_engine(settings.engine))(context)
        self.reputation = ReputationBook(settings.reputation_alpha, settings.initial_reputation)
        self.stats = TrainerStats()
        self.peers: dict[str, str] = {}  # ai_id -> specialization
        self._hub_ais = 0  # joined AIs on the hub, as its latest STATE or AIS counted them
        self.active: dict[str, ActiveCollaboration] = {}
        self._open_requests: dict[str, RequestTerms] = {}  # every request sent, by id
        self._unanswered: dict[str, int] = {}  # request id -> tick it was sent at
        self._ticks = 0
        self._plan = outcome.Plan(patterns_to_share, components_to_share)
        self._training: dict[str, Any] = {}
        self._auth_error: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ids = 0
        self._stop = asyncio.Event()
        self._stopping = False  # run() is winding down: no new background work
        # No collaboration before local training: an untrained model is worth nothing to a
        # partner, and measuring engines would rightly score it so.
        self._trained = asyncio.Event()
        self.client = HubClient(
            settings.hub_host,
            settings.hub_port,
            settings.ai_id,
            settings.token,
            specialization=settings.specialization,
            capabilities=self.capabilities,
            on_message=self._on_message,
            on_state=self._on_state,
            max_frame=settings.max_frame,
            follow=type(self.engine).topics_followed(),
            ssl=client_context(settings.tls_ca, settings.tls_cert, settings.tls_key)
            if settings.tls
            else None,
            addresses=list(settings.hub_addresses) or None,
        )

    # ------------------------------------------------------------------ running

    async def run(self, duration: float | None = None) -> TrainerReport:
        """Run ``duration`` scenario seconds (or until :meth:`stop`); return :meth:`report`."""
        trap = policy.threshold_trap(
            self.settings.trust_threshold, self.settings.initial_reputation
        )
        if trap is not None:
            log.warning("[%s] %s", self.ai_id, trap)
        connection = asyncio.create_task(self.client.run())
        behaviour = [
            asyncio.create_task(self._learn_and_share()),
            asyncio.create_task(self._tick_loop()),
            asyncio.create_task(self._report_loop()),
        ]
        try:
            waiter: list[asyncio.Task[Any]] = [asyncio.create_task(self._stop.wait())]
            if duration is not None:
                waiter.append(asyncio.create_task(self.clock.sleep(duration)))
            done, _ = await asyncio.wait([connection, *waiter], return_when=asyncio.FIRST_COMPLETED)
            if connection in done and (exc := connection.exception()) is not None:
                if not isinstance(exc, AuthenticationError):
                    raise exc
                self._auth_error = str(exc)
                log.error("[%s] %s", self.ai_id, exc)
            for task in waiter:
                task.cancel()
        finally:
            # Behaviour stops before the final TRAINER_REPORT, so the figures the hub keeps
            # are the ones report() gives (no merge lands in between).
            self._stopping = True
            working = [*behaviour, *self._tasks]
            for task in working:
                task.cancel()
            await asyncio.wait(working, timeout=STOP_TIMEOUT)
            await self._send_report(final=True)
            await self.client.close()
            # Cancel the connection too: it may be sleeping in a reconnect backoff.
            tasks = [connection, *behaviour, *self._tasks]
            for task in tasks:
                task.cancel()
            _, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
            if stuck:
                log.warning("[%s] %d tasks did not stop in time", self.ai_id, len(stuck))
        return self.report()

    def stop(self) -> None:
        """Ask :meth:`run` to disconnect and return."""
        self._stop.set()

    def report(self) -> TrainerReport:
        return outcome.outcome_report(
            ai_id=self.ai_id,
            specialization=self.settings.specialization,
            engine=self.engine.name,
            engine_summary=self.engine.summary(),
            training=self._training,
            active_collaborations=len(self.active),
            stats=self.stats,
            plan=self._plan,
            link=self._link(),
            book=self.reputation,
            threshold=self.settings.trust_threshold,
        )

    def succeeded(self) -> bool:
        """Connected and shared everything it planned to."""
        return outcome.succeeded(self.stats, self._plan, self._link())

    def failure_reason(self) -> str | None:
        """Why the trainer has not succeeded (see :func:`outcome.failure_reason`)."""
        return outcome.failure_reason(self.stats, self._plan, self._link())

    def _link(self) -> outcome.Connection:
        return outcome.Connection(self.client.connections, self._auth_error, self.client.last_error)

    def _new_id(self, kind: str) -> str:
        self._ids += 1
        return f"{self.ai_id}_{kind}_{self.rng.getrandbits(48):012x}_{self._ids}"

    def _spawn(self, coro: Any) -> None:
        if self._stopping:
            coro.close()
            return
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, message: PatternShare | ComponentShare | Feedback) -> bool:
        """Send until ACKed, across reconnects (ids make retries idempotent). False on ERROR."""
        while True:
            await self.client.connected.wait()
            try:
                await self.client.request(message)
                return True
            except (ConnectionLost, TimeoutError):
                await asyncio.sleep(0.05)
            except HubError as exc:
                self.stats.hub_errors.append(f"{message.type}: {exc}")
                log.warning("[%s] Hub refused %s: %s", self.ai_id, message.type, exc)
                return False

    # ------------------------------------------------------------------ behaviour

    async def _learn_and_share(self) -> None:
        await self.client.connected.wait()
        await self.clock.sleep(TRAINING_TIME)
        self._training = await self.engine.train()
        self._trained.set()
        for index in range(self._plan.patterns):
            if index:
                await self.clock.sleep(PATTERN_INTERVAL)
            artifact = self.engine.make_pattern(index)
            pattern_id = self._new_id("pattern")
            if await self._deliver(PatternShare(pattern_id=pattern_id, pattern_data=artifact.data)):
                self.stats.patterns_shared += 1
                log.info("[%s] Shared pattern %s", self.ai_id, pattern_id)
        for index in range(self._plan.components):
            await self.clock.sleep(PATTERN_INTERVAL)
            artifact = self.engine.make_component(index)
            component_id = self._new_id(f"{self.settings.specialization}_module")
            message = ComponentShare(
                component_id=component_id,
                component_data=artifact.data,
                quality_score=artifact.quality_score,
            )
            if await self._deliver(message):
                self.stats.components_shared += 1
                log.info("[%s] Shared component %s", self.ai_id, component_id)

    async def _report_loop(self) -> None:
        """A TRAINER_REPORT every :data:`REPORT_INTERVAL` once trained (the final one is sent
        by :meth:`run`)."""
        await self._trained.wait()
        while True:
            await self._send_report(final=False)
            await self.clock.sleep(REPORT_INTERVAL)

    async def _send_report(self, *, final: bool) -> None:
        if self._trained.is_set():
            await send_report(
                self.client,
                self.engine,
                self.reputation,
                self.stats.rejected_for_trust,
                self.stats.hub_errors,
                final=final,
            )

    async def _tick_loop(self) -> None:
        await self.client.connected.wait()
        while True:
            await self.clock.sleep(TICK)
            if not self.client.connected.is_set():
                continue
            self._ticks += 1
            if self._ticks % policy.standings_every(len(self.peers), self._hub_ais) == 0:
                known = self.reputation.scores.keys() | self.peers.keys()
                with contextlib.suppress(ConnectionLost):
                    for ids in policy.standings_batches(known, self.ai_id, LIST_AIS_MAX):
                        await self.client.send(ListAis(ids=ids, limit=LIST_AIS_MAX))
            # A request nobody accepted within two ticks no longer counts as pending work.
            oldest = self._ticks - REQUEST_PATIENCE
            self._unanswered = {r: sent for r, sent in self._unanswered.items() if sent >= oldest}
            try:
                await self._advance_collaborations()
                # Requests still waiting for an answer count, or a busy hub (slow answers)
                # would make us ask again every tick and end up in far more than we want.
                busy = len(self.active) + len(self._unanswered)
                if policy.should_request(
                    trained=self._trained.is_set(), busy=busy, peers=len(self.peers)
                ):
                    await self._broadcast_request()
            except (ConnectionLost, TimeoutError):
                # Stopping closes the connection, then cancels us: the gather above can then
                # end in a request's ConnectionLost instead of CancelledError (Python 3.11),
                # and swallowing it would keep this loop running past the stop.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from None

    async def _broadcast_request(self) -> None:
        request_id = self._new_id("request")
        request = CollaborationRequest(
            request_id=request_id,
            expertise_offered=self.capabilities,
            seeking_expertise=self.catalog.lacking(self.capabilities),
        )
        self._open_requests[request_id] = RequestTerms.of(request)
        self._unanswered[request_id] = self._ticks
        try:
            await self.client.request(request)
        except HubError as exc:
            self.stats.hub_errors.append(f"{request.type}: {exc}")
            return
        self.stats.requests_sent += 1
        log.info("[%s] Broadcasted COLLABORATION_REQUEST", self.ai_id)

    async def _advance_collaborations(self) -> None:
        """Advance every collaboration we drive by one step, concurrently."""
        driven = [c for c in self.active.values() if c.role == "acceptor"]
        await asyncio.gather(*(self._advance(collab) for collab in driven))

    async def _advance(self, collab: ActiveCollaboration) -> None:
        collab.progress = await self.engine.work(self._task(collab), collab.progress)
        try:
            if collab.progress < 100.0:
                await self.client.request(
                    CollaborationProgress(
                        collaboration_id=collab.collaboration_id, progress=collab.progress
                    )
                )
            else:
                await self._complete(collab)
        except HubError as exc:  # the collaboration ended meanwhile (partner left)
            self.stats.hub_errors.append(f"collaboration {collab.collaboration_id}: {exc}")
            self._end(collab.collaboration_id, outcome=None)

    async def _complete(self, collab: ActiveCollaboration) -> None:
        artifact = self.engine.build_for_collaboration(self._task(collab))
        component_id = self._new_id("collab_feature")
        await self.client.request(
            ComponentShare(
                component_id=component_id,
                component_data=artifact.data,
                quality_score=artifact.quality_score,
                to=collab.partner,
                collaboration_id=collab.collaboration_id,
                collaboration_complete=True,
            )
        )
        self._end(collab.collaboration_id, outcome=1.0)

    def _task(self, collab: ActiveCollaboration) -> CollaborationTask:
        return CollaborationTask(
            collab.collaboration_id, collab.partner, self.peers.get(collab.partner), collab.request
        )

    def _start(self, collab: ActiveCollaboration) -> None:
        """A collaboration began: keep it, and offer the partner what the engine has."""
        self.active[collab.collaboration_id] = collab
        self._spawn(self._begin(collab))

    async def _begin(self, collab: ActiveCollaboration) -> None:
        """A collaboration started: send the partner what the engine offers, if anything."""
        artifact = self.engine.offer(self._task(collab))
        if artifact is None:
            return
        share = ComponentShare(
            component_id=self._new_id("offer"),
            component_data=artifact.data,
            quality_score=artifact.quality_score,
            to=collab.partner,
            collaboration_id=collab.collaboration_id,
        )
        with contextlib.suppress(ConnectionLost, TimeoutError):
            try:
                await self.client.request(share)
            except HubError as exc:  # it ended meanwhile (the partner left)
                self.stats.hub_errors.append(f"offer on {collab.collaboration_id}: {exc}")

    async def _assess(self, collab: ActiveCollaboration, message: RelayedComponentShare) -> None:
        """The partner's offer arrived: the engine uses and measures it; that measurement is the
        partner's outcome for this collaboration, and our FEEDBACK on its component."""
        assessment = await self.engine.assess(self._task(collab), message.component_data)
        if assessment is None:
            return
        collab.assessed = True
        score = self.reputation.update(collab.partner, assessment.outcome, measured=True)
        self.stats.assessments.append(round(assessment.outcome, 4))
        log.info(
            "[%s] Measured %s's contribution: outcome %.3f (%s); reputation now %.3f",
            self.ai_id,
            collab.partner,
            assessment.outcome,
            "merged" if assessment.kept else "not merged",
            score,
        )
        feedback = Feedback(
            kind="component",
            id=message.component_id,
            score=assessment.score,
            usefulness=assessment.usefulness,
        )
        await self._deliver(feedback)

    def _end(self, collaboration_id: str, *, outcome: float | None) -> None:
        """Forget a collaboration. ``outcome`` feeds the partner's reputation, except a success
        whose contribution was already measured (one interaction, one update)."""
        collab = self.active.pop(collaboration_id, None)
        if collab is None or self._stopping:
            # Winding down freezes the figures: the final report is being sent.
            return
        if outcome is None:
            self.stats.collaborations_failed += 1
            return
        if collab.assessed and outcome > 0:
            self.stats.collaborations_completed += 1
            return
        score = self.reputation.update(collab.partner, outcome)
        if outcome > 0:
            self.stats.collaborations_completed += 1
            verb = "completed"
        else:
            self.stats.collaborations_failed += 1
            verb = "failed"
        log.info(
            "[%s] Collaboration %s with %s %s; reputation of %s now %.3f",
            self.ai_id,
            collaboration_id,
            collab.partner,
            verb,
            collab.partner,
            score,
        )

    # ------------------------------------------------------------------ incoming

    async def _on_state(self, state: State) -> None:
        if self._stopping:
            return
        self.peers = {
            ai.ai_id: ai.specialization for ai in state.active_ais if ai.ai_id != self.ai_id
        }
        self.reputation.seed_all(state.active_ais, own=self.ai_id)
        self._hub_ais = state.active_total or len(state.active_ais)
        # The hub failed our collaborations when we dropped; nobody is to blame for that.
        for collaboration_id in list(self.active):
            self._end(collaboration_id, outcome=None)

    async def _on_message(self, message: Incoming) -> None:
        if self._stopping:
            # Behaviour has stopped and the final figures are sent: what arrives while the
            # connection closes changes nothing (a request gets no answer and times out).
            return
        match message:
            case RelayedCollaborationRequest():
                await self._consider(message)
            case RelayedCollaborationAccept():
                request = self._open_requests.get(
                    message.request_id, RequestTerms(request_id=message.request_id)
                )
                self._unanswered.pop(message.request_id, None)
                self._start(
                    ActiveCollaboration(
                        message.collaboration_id, message.sender, "requester", request
                    )
                )
                log.info(
                    "[%s] %s accepted our request; collaboration %s started",
                    self.ai_id,
                    message.sender,
                    message.collaboration_id,
                )
            case RelayedCollaborationReject():
                self.stats.rejections_received += 1
            case RelayedCollaborationProgress():
                if reported := self.active.get(message.collaboration_id):
                    reported.progress = message.progress
            case RelayedComponentShare():
                self.engine.observe_component(
                    message.sender,
                    message.component_id,
                    message.component_data,
                    message.quality_score,
                )
                current = self.active.get(message.collaboration_id or "")
                if current is not None and message.collaboration_complete:
                    self._end(current.collaboration_id, outcome=1.0)
                    self._spawn(self._deliver(Feedback(kind="component", id=message.component_id)))
                elif current is not None and not current.assessed:
                    self._spawn(self._assess(current, message))
            case RelayedCollaborationComplete():
                self._end(message.collaboration_id, outcome=1.0)
            case RelayedCollaborationFailed():
                self._end(message.collaboration_id, outcome=0.0)
            case RelayedPatternShare():
                self.engine.observe_pattern(
                    message.sender, message.pattern_id, message.pattern_data
                )
            case AiJoined():
                self.peers[message.ai_id] = message.specialization
                self.reputation.seed(message.ai_id, message.reputation, message.credibility)
            case AiLeft():
                self.peers.pop(message.ai_id, None)
            case Ais():
                # The peers we know of (presence, requests, work), as asked: a hub older than
                # LIST_AIS's ids lists every AI, thousands we may never meet.
                known = self.reputation.scores.keys() | self.peers.keys()
                self.reputation.seed_all((a for a in message.ais if a.ai_id in known), self.ai_id)
                self._hub_ais = message.active_total
                if message.next is not None:
                    with contextlib.suppress(ConnectionLost):
                        await self.client.send(ListAis(after=message.next))
            case _:
                pass

    async def _consider(self, request: RelayedCollaborationRequest) -> None:
        self.stats.requests_received += 1
        if request.specialization:
            self.peers.setdefault(request.sender, request.specialization)
        self.reputation.seed(request.sender, request.reputation, request.credibility)
        decision = policy.consider_request(
            trained=self._trained.is_set(),
            trust=self.reputation.get(request.sender),
            threshold=self.settings.trust_threshold,
            is_complementary=policy.complementary(
                self.settings.specialization,
                self.capabilities,
                request.specialization,
                request.expertise_offered,
            ),
            active=len(self.active),
        )
        if decision.low_trust:
            refused = self.stats.rejected_for_trust
            refused[request.sender] = refused.get(request.sender, 0) + 1
        if not decision.accept:
            reason = decision.reason
            self.stats.requests_rejected += 1
            log.info("[%s] Rejected request from %s: %s", self.ai_id, request.sender, reason)
            with contextlib.suppress(HubError, ConnectionLost, TimeoutError):
                await self.client.request(
                    CollaborationReject(
                        request_id=request.request_id, to=request.sender, reason=reason
                    )
                )
            return
        try:
            ack = await self.client.request(
                CollaborationAccept(request_id=request.request_id, to=request.sender)
            )
        except HubError as exc:
            if exc.code == "conflict":  # another peer was quicker: nobody's fault
                log.info("[%s] Request from %s already taken", self.ai_id, request.sender)
            else:
                log.info("[%s] Could not accept %s's request: %s", self.ai_id, request.sender, exc)
            return
        except (ConnectionLost, TimeoutError) as exc:
            log.info("[%s] Could not accept %s's request: %s", self.ai_id, request.sender, exc)
            return
        assert ack.collaboration_id is not None
        self.stats.requests_accepted += 1
        self._start(
            ActiveCollaboration(
                ack.collaboration_id, request.sender, "acceptor", RequestTerms.of(request)
            )
        )
        log.info(
            "[%s] Accepted collaboration request from %s (collaboration %s)",
            self.ai_id,
            request.sender,
            ack.collaboration_id,
        )
