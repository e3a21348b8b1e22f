"""The generator of ``docs/protocol.md``: ``python -m tools.protocol_docs --write|--check``.

:mod:`~tools.protocol_docs.generator` renders; ``prose.md``, :mod:`~tools.protocol_docs.data`
and :mod:`~tools.protocol_docs.session` hold what the message models cannot say.
"""
