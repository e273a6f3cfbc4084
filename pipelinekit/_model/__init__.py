"""The declaration model: ``Pipeline``, ``Stage``, ``Action`` and their parts, and their checks.

It knows nothing of running: validation, names, ``#{...}`` references, events as records of
state changes, and secret masking live here; the public names are re-exported by
``pipelinekit``.
"""
