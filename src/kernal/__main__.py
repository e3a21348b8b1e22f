"""``python -m kernal ...``: the same as the ``kernal`` command."""

from kernal.cli import main

# Guarded: the harness's spawned children import the main module again by name (as
# ``__mp_main__``), and from the repository root ``python -m kernal`` names ``kernal.py``, whose
# name a child resolves to this package; unguarded, each child ran the whole command again.
if __name__ == "__main__":
    main()
