"""Ingest: load documents, clean and chunk them, embed and write the index.

Installed as ``rag.ingest``. The package itself is callable, so ``rag.ingest(paths)``
(the convenience function) and ``rag.ingest.pipeline`` (the modules) share one name:
importing a submodule binds ``rag.ingest`` to this package, which would otherwise
shadow a function of that name.
"""

from __future__ import annotations

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, paths, index=None, **options):
        """Ingest files or folders into the index: see :func:`rag.ingest.pipeline.ingest`."""
        from .pipeline import ingest

        return ingest(paths, index, **options)


sys.modules[__name__].__class__ = _CallableModule
