"""Airlock: an AI workflow execution engine on Prefect 3.

The model plans; deterministic code executes, validates and writes. This package is the reusable
engine; the organisation's own workflows live beside it in ``flows/``, ``tasks/``, ``tools/`` and
``expectations/`` and import from here, never the other way round.
"""

__version__ = "0.1.0"
