"""Running pipelines: the engine, the scheduler's parts, recording, delivery to hooks, leases.

Builds on the compiler's ``Plan`` and on stores, providers and executors through their
protocols; the public names (``Engine``, ``Execution``, ``run``, results) are re-exported by
``pipelinekit``.
"""
