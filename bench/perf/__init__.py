"""The pieces of ``bench/run``: processes (:mod:`perf.procs`), the client harness
(:mod:`perf.wire`), one module per row (:mod:`perf.relay`, :mod:`perf.fanin`,
:mod:`perf.connections`, :mod:`perf.scale`) and the table (:mod:`perf.report`).

Imported as the top-level package ``perf`` (``bench/run.py`` puts ``bench/`` on ``sys.path``),
so nothing here is part of kernal's installed package.
"""
