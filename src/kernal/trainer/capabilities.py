"""What each specialization can do. Extend it with a TOML file instead of editing code:
see :func:`kernal.config.load_capabilities_file`."""

from __future__ import annotations

from collections.abc import Mapping

BASE_CAPABILITIES = ["pattern_recognition", "code_generation", "os_development"]

SPECIALIZATIONS: dict[str, list[str]] = {
    "window_manager": ["window_composition", "event_dispatch", "layout_management"],
    "file_system": ["file_io", "journaling", "block_caching"],
    "process_manager": ["scheduling", "ipc", "memory_management"],
    "security": ["access_control", "cryptography", "sandboxing"],
    "networking": ["network_protocols", "packet_routing", "socket_management"],
    "graphics": ["rendering", "gpu_drivers", "shader_compilation"],
    "audio": ["audio_mixing", "sound_drivers", "signal_processing"],
    "performance": ["profiling", "optimization", "benchmarking"],
}


class CapabilityCatalog:
    """Built-in specializations plus any extra ones from a config file (extras win)."""

    def __init__(self, extra: Mapping[str, list[str]] | None = None) -> None:
        self._specs = {**SPECIALIZATIONS, **(extra or {})}

    def capabilities_of(self, specialization: str) -> list[str]:
        """Base capabilities plus the specialization's own; unknown ones get the base only."""
        own = [c for c in self._specs.get(specialization, []) if c not in BASE_CAPABILITIES]
        return BASE_CAPABILITIES + own

    def lacking(self, capabilities: list[str]) -> list[str]:
        """Every known capability not in ``capabilities``, in catalogue order."""
        have = set(capabilities)
        seen: set[str] = set()
        missing = []
        for caps in self._specs.values():
            for cap in caps:
                if cap not in have and cap not in seen:
                    seen.add(cap)
                    missing.append(cap)
        return missing
