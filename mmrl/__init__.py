"""mmrl: reinforcement learning of trustworthy, multimodal emotional-support dialogue systems."""

from mmrl.errors import ConfigError, DataError, MissingDependencyError, MmrlError, SplitLeakError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "MissingDependencyError", "MmrlError", "SplitLeakError", "__version__"]
