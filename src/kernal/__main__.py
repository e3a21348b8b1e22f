"""``python -m kernal ...``: the same as the ``kernal`` command."""

from kernal.cli import main

main()
