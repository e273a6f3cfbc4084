"""``python -m pipelinekit``: the same as the ``pipelinekit`` command."""

from pipelinekit.cli import entry

entry()
