"""The declared public API: ``from kernal import ...`` works for every name in ``__all__``."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import kernal

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_unique_importable_and_documented() -> None:
    assert len(set(kernal.__all__)) == len(kernal.__all__)
    for name in kernal.__all__:
        value = getattr(kernal, name)
        assert value is not None, name
        if name != "__version__":
            assert value.__doc__, f"{name} has no docstring"
            # The object is the one its home module defines, not a copy.
            home = importlib.import_module(value.__module__)
            assert getattr(home, name) is value


def test_unknown_names_are_attribute_errors() -> None:
    try:
        kernal.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_dir_lists_the_public_api() -> None:
    assert set(kernal.__all__) <= set(dir(kernal))


def test_import_kernal_is_cheap() -> None:
    """``import kernal`` loads none of the hub, web or learning code until a name is used."""
    code = (
        "import sys, kernal; "
        "print(sorted(m for m in sys.modules if m.startswith('kernal.') or m in "
        "('fastapi', 'numpy', 'sqlalchemy')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
