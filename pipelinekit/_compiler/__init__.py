"""The compiler: a validated ``Pipeline`` becomes a ``Plan`` (a networkx DAG of actions and gates).

Builds on ``pipelinekit._model`` only; ``pk.Plan`` is re-exported by ``pipelinekit``.
"""
