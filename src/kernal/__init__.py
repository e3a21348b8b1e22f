"""kernal: a hub where AI trainers meet, authenticate, share what they learn and collaborate.

The names below are the public API (``from kernal import Trainer``); everything else may change
between releases. They are imported on first use, so ``import kernal`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS: dict[str, str] = {
    # running a hub
    "Hub": "kernal.hub.server",
    "HubSettings": "kernal.config",
    "HubStatus": "kernal.hub.status",
    "Service": "kernal.serve",
    "serving": "kernal.serve",
    "start_service": "kernal.serve",
    # connecting to one
    "HubClient": "kernal.trainer.client",
    "HubError": "kernal.trainer.client",
    "AuthenticationError": "kernal.trainer.client",
    "Trainer": "kernal.trainer.trainer",
    "TrainerSettings": "kernal.config",
    "TrainerReport": "kernal.trainer.report",
    # writing an engine
    "Engine": "kernal.engines.base",
    "EngineContext": "kernal.engines.base",
    "EngineOptions": "kernal.engines.base",
    "Artifact": "kernal.engines.base",
    "Assessment": "kernal.engines.base",
    "CollaborationTask": "kernal.engines.base",
    "Figures": "kernal.engines.base",
}

__all__ = [
    "Artifact",
    "Assessment",
    "AuthenticationError",
    "CollaborationTask",
    "Engine",
    "EngineContext",
    "EngineOptions",
    "Figures",
    "Hub",
    "HubClient",
    "HubError",
    "HubSettings",
    "HubStatus",
    "Service",
    "Trainer",
    "TrainerReport",
    "TrainerSettings",
    "__version__",
    "serving",
    "start_service",
]

if TYPE_CHECKING:
    from kernal.config import HubSettings, TrainerSettings
    from kernal.engines.base import (
        Artifact,
        Assessment,
        CollaborationTask,
        Engine,
        EngineContext,
        EngineOptions,
        Figures,
    )
    from kernal.hub.server import Hub
    from kernal.hub.status import HubStatus
    from kernal.serve import Service, serving, start_service
    from kernal.trainer.client import AuthenticationError, HubClient, HubError
    from kernal.trainer.report import TrainerReport
    from kernal.trainer.trainer import Trainer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kernal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
