"""The provider classes pipelinekit ships, for the default registry."""

from pipelinekit.providers._approval import ManualApproval
from pipelinekit.providers._commands import Commands
from pipelinekit.providers._http import HttpRequest, Wait
from pipelinekit.providers._python import PythonFunction
from pipelinekit.providers._sources import ArchiveSource, GitSource, LocalSource

__all__ = ["BUILTIN"]

BUILTIN: tuple[type, ...] = (
    Commands,
    PythonFunction,
    LocalSource,
    GitSource,
    ArchiveSource,
    HttpRequest,
    Wait,
    ManualApproval,
)
