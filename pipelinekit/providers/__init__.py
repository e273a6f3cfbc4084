"""Action providers: what an action does.

A provider is a plain object whose class carries an ``action_type`` (an ``ActionTypeId``); the
``@provider`` decorator sets it. Optionally it has ``problems()``, yielding ``(field, message)``
pairs for declarations that break its rules, which pipeline validation reports with the stage
and action at fault.
"""

from pipelinekit.providers._commands import Commands as Commands
from pipelinekit.providers._commands import shell as shell
from pipelinekit.providers._declare import provider as provider
from pipelinekit.providers._python import PythonFunction as PythonFunction
from pipelinekit.providers._python import action as action
from pipelinekit.providers._python import python as python

__all__ = ["Commands", "PythonFunction", "action", "provider", "python", "shell"]
