"""Action providers: what an action does.

A provider is a plain object whose class carries an ``action_type`` (an ``ActionTypeId``) and has
one async method, ``run(ctx)``; see ``Provider`` for the whole contract. ``@provider`` sets the
action type. ``ProviderRegistry`` finds provider classes by action type, including those that
installed packages declare under the ``pipelinekit.providers`` entry point group.
"""

from pipelinekit.providers._approval import ManualApproval as ManualApproval
from pipelinekit.providers._commands import Commands as Commands
from pipelinekit.providers._commands import shell as shell
from pipelinekit.providers._declare import provider as provider
from pipelinekit.providers._http import HttpRequest as HttpRequest
from pipelinekit.providers._http import Wait as Wait
from pipelinekit.providers._protocol import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
from pipelinekit.providers._protocol import Provider as Provider
from pipelinekit.providers._protocol import ProviderRegistry as ProviderRegistry
from pipelinekit.providers._python import PythonFunction as PythonFunction
from pipelinekit.providers._python import action as action
from pipelinekit.providers._python import python as python
from pipelinekit.providers._sources import ArchiveSource as ArchiveSource
from pipelinekit.providers._sources import GitSource as GitSource
from pipelinekit.providers._sources import LocalSource as LocalSource

__all__ = [
    "ENTRY_POINT_GROUP",
    "ArchiveSource",
    "Commands",
    "GitSource",
    "HttpRequest",
    "LocalSource",
    "ManualApproval",
    "Provider",
    "ProviderRegistry",
    "PythonFunction",
    "Wait",
    "action",
    "provider",
    "python",
    "shell",
]
