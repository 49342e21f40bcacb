"""The pull stage: bring a model from the hub, a mirror, a local folder or a GGUF file into a checked folder.

Use ``pull(reference, out, ...)``; it returns a ``PullResult`` whose ``source`` is the pinned
``Source`` (commit sha, every file with its sha256) and whose ``stage()`` is the report stage.
"""

from crowguard.pull.interface import PullResult, PullSettings, PullSource
from crowguard.pull.pulling import pull

__all__ = ["PullResult", "PullSettings", "PullSource", "pull"]
