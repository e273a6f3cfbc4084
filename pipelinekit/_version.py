"""The package version, in one place for hatchling and for ``pipelinekit.__version__``."""

__version__ = "0.1.0.dev0"
