"""Developer tools of the kernal checkout, run from the repository root (``python -m tools.X``).

Not part of the installed package: nothing under ``src/kernal`` imports from here.
"""
