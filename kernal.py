#!/usr/bin/env python3
"""Launcher for a checkout: ``python3 kernal.py hub|trainer|harness|token ...``.

This file shares its name with the ``kernal`` package. Run as a script, it makes sure
``import kernal`` finds ``src/kernal`` rather than itself and runs under the checkout's ``.venv``
when there is one. Imported as ``kernal`` (the checkout root is on ``sys.path``, as under pytest
or ``python -c`` from here), it replaces itself with the real package.
"""

import importlib
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
VENV = HERE / ".venv"


def _prefer_package() -> None:
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    if (SRC / "kernal").is_dir() and str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))


if __name__ == "__mp_main__":
    # A multiprocessing child (the harness's workers) runs its parent's main script again under
    # this name; it was given the parent's sys.path, which already finds the package.
    pass
elif __name__ != "__main__":
    # The import system returns whatever sys.modules holds for this name once we finish, so
    # putting the package there makes `import kernal` yield the package, not this launcher.
    del sys.modules[__name__]
    _prefer_package()
    sys.modules[__name__] = importlib.import_module(__name__)
else:
    venv_python = VENV / "bin" / "python"
    if venv_python.exists() and Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])
    _prefer_package()
    try:
        from kernal.cli import main
    except KeyboardInterrupt:  # Ctrl+C while still starting up
        sys.exit(130)
    except ModuleNotFoundError as exc:
        if (SRC / "kernal").is_dir():  # a checkout that was never set up
            sys.exit(
                f"kernal's dependencies are not installed ({exc.name} is missing).\n"
                "Set up the checkout first: scripts/setup (creates .venv and installs kernal)."
            )
        sys.exit(  # a copy of this launcher, away from any checkout
            f"kernal is not installed for this Python ({sys.executable}): {exc.name} is missing.\n"
            "Install it from a checkout or a wheel, e.g.\n"
            f"  {sys.executable} -m pip install /path/to/kernal\n"
            "then run this file again, or use the `kernal` command it installs. For a trainer\n"
            "of your own to edit, `kernal new-trainer ~/my_trainer.py` writes one."
        )
    main()
