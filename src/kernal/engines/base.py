"""The engine interface: the part of a trainer that learns and builds things.

The trainer handles the network, the timing and the collaboration protocol; an engine decides
what is shared and what a collaboration produces. Implement :class:`Engine` and register it in
the ``kernal.engines`` entry-point group (the built-in ``simulated`` engine is registered the
same way)::

    [project.entry-points."kernal.engines"]
    my_engine = "my_package.engine:MyEngine"

then run ``kernal trainer AI_X networking TOKEN --engine my_engine``. An engine with settings
declares them as a pydantic model (``Options = MyOptions``, a subclass of
:class:`EngineOptions`); ``--option KEY=VALUE`` on the command line (and the harness) fills it,
and a wrong name or value fails before the trainer connects.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from kernal.protocol.messages import RequestTerms, Topic

ENGINE_GROUP = "kernal.engines"


class EngineOptions(BaseModel):
    """Base of an engine's typed options. Unknown names are errors, so a typo never passes
    silently; values from the command line arrive as text and are converted."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineOptionsError(ValueError):
    """Options an engine does not accept; the message names each one and why."""


@dataclass(frozen=True)
class EngineContext:
    """What an engine knows about the trainer it runs in. ``options`` carries engine-specific
    settings from the command line (``--data``, ``--split``, ``--option KEY=VALUE``, ...), as
    given; the engine reads them through its :attr:`Engine.Options` model."""

    ai_id: str
    specialization: str
    capabilities: list[str]
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random)
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Artifact:
    """Something to share: its JSON data and, for components, the author's quality estimate."""

    data: dict[str, Any]
    quality_score: float | None = None


@dataclass(frozen=True)
class CollaborationTask:
    """A collaboration this trainer works on, as the engine sees it."""

    collaboration_id: str
    partner: str
    partner_specialization: str | None
    request: RequestTerms


@dataclass(frozen=True)
class Assessment:
    """What the engine measured on a partner's contribution.

    ``outcome`` (0..1) feeds the partner's reputation; ``score`` (0..1, optional) is sent to the
    hub as FEEDBACK on the partner's component, with ``usefulness`` (0..1, optional): what using
    it measurably did (0 harmful or unusable, 1 no loss), which the hub's standing of the
    partner goes by when given; ``kept`` says whether it was merged.
    """

    outcome: float
    score: float | None = None
    kept: bool = False
    usefulness: float | None = None


@dataclass(frozen=True)
class Figures:
    """What an engine measured of its own model, for the trainer's ``TRAINER_REPORT``.

    ``accuracy`` (0..1) is the figure the engine reports its progress by (the learning engine:
    held-out test accuracy, the same as its summary's ``final_accuracy``);
    ``local_only_accuracy`` the baseline of training alone, ``centralized_baseline`` one model
    trained on all data, when the engine knows them. ``refused_merges``: partner -> (models of
    it the engine refused to merge, the latest reason), for the dashboard to say why.
    """

    accuracy: float
    local_only_accuracy: float | None = None
    centralized_baseline: float | None = None
    merges_kept: int = 0
    merges_rejected: int = 0
    refused_merges: dict[str, tuple[int, str]] = field(default_factory=dict)


class Engine(abc.ABC):
    """Base class of training engines. One instance per trainer; methods run on its event loop."""

    name: str = "engine"
    Options: ClassVar[type[EngineOptions]] = EngineOptions
    """The engine's options model; the base has none."""

    def __init__(self, context: EngineContext) -> None:
        self.context = context
        self.options = self.parse_options(context.options)

    @classmethod
    def parse_options(cls, raw: Mapping[str, Any]) -> EngineOptions:
        """``raw`` validated into :attr:`Options`; raises :class:`EngineOptionsError`."""
        try:
            return cls.Options.model_validate(dict(raw))
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_url=False):
                where = ".".join(str(part) for part in error["loc"]) or "options"
                message = "unknown option" if error["type"] == "extra_forbidden" else error["msg"]
                problems.append(f"{where}: {message}")
            known = ", ".join(cls.Options.model_fields) or "none"
            raise EngineOptionsError(
                f"engine {cls.name!r} options: {'; '.join(problems)} (its options: {known})"
            ) from None

    @abc.abstractmethod
    async def train(self) -> dict[str, Any]:
        """The local training phase before sharing starts. Returns a summary for the report."""

    @abc.abstractmethod
    def make_pattern(self, index: int) -> Artifact:
        """The ``index``-th pattern to share (0-based)."""

    @abc.abstractmethod
    def make_component(self, index: int) -> Artifact:
        """The ``index``-th component to share (0-based)."""

    @abc.abstractmethod
    def build_for_collaboration(self, task: CollaborationTask) -> Artifact:
        """What this trainer delivers to its partner when a collaboration reaches 100%."""

    # ------------------------------------------------------------------ collaboration work
    # Defaults reproduce the prototype: no exchange, +10% per tick, success judged at the end.

    def offer(self, task: CollaborationTask) -> Artifact | None:
        """What to send the partner as soon as a collaboration starts (None: nothing)."""
        return None

    async def assess(self, task: CollaborationTask, data: dict[str, Any]) -> Assessment | None:
        """The partner's offer arrived: use it and measure it. None: nothing was measured, and
        the partner is judged by whether the collaboration completes."""
        return None

    async def work(self, task: CollaborationTask, progress: float) -> float:
        """One tick of work on a collaboration this trainer drives; returns the new progress
        (0..100). At 100 the trainer delivers :meth:`build_for_collaboration`."""
        return min(100.0, progress + 10.0)

    def observe_pattern(self, sender: str, pattern_id: str, data: dict[str, Any]) -> None:  # noqa: B027
        """A peer shared a pattern. Default: ignore it."""

    def observe_component(  # noqa: B027
        self, sender: str, component_id: str, data: dict[str, Any], quality: float | None
    ) -> None:
        """A peer shared (or delivered) a component. Default: ignore it."""

    @classmethod
    def topics_followed(cls) -> list[Topic]:
        """What its trainer follows: requests and presence always; others' shares only if the
        engine looks at them (a trainer that ignores them should not have every share on the
        hub sent to it)."""
        follows: list[Topic] = ["requests", "presence"]
        if cls.observe_pattern is not Engine.observe_pattern:
            follows.append("patterns")
        if cls.observe_component is not Engine.observe_component:
            follows.append("components")
        return follows

    def summary(self) -> dict[str, Any]:
        """Figures for the trainer's report."""
        return {}

    def figures(self, *, final: bool = False) -> Figures | None:
        """What the engine measured of itself now, reported to the hub (None: it measures
        nothing, and the trainer reports nothing). ``final``: the run is over, so figures that
        are costly to compute are worth it once. Default: None."""
        return None


class UnknownEngineError(LookupError):
    pass


def available_engines() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENGINE_GROUP))


def load_engine(name: str) -> type[Engine]:
    """The engine class registered as ``name`` in the ``kernal.engines`` entry-point group."""
    for ep in entry_points(group=ENGINE_GROUP, name=name):
        engine = ep.load()
        if not (isinstance(engine, type) and issubclass(engine, Engine)):
            raise UnknownEngineError(f"entry point {name!r} is not an Engine subclass: {engine!r}")
        return engine
    known = ", ".join(available_engines()) or "none (is kernal installed? `pip install -e .`)"
    raise UnknownEngineError(f"no engine named {name!r}; available: {known}")
