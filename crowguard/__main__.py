"""Entry point for ``python -m crowguard``; the ``crowguard`` console script is the supported one.

``python -m`` puts the working directory first on ``sys.path``. When the cwd is a model folder that
holds a ``crowguard/`` package, Python imports that package instead of this one and nothing here can
prevent it; run ``python -P -m crowguard`` (or the console script, whose ``sys.path[0]`` is its bin
folder) from an untrusted folder. What this module can do is drop the cwd entry before anything else
is imported, so a ``json.py`` or ``jinja2/`` in the cwd is not picked up by crowguard's own imports.
"""

import os
import sys

if not getattr(sys.flags, "safe_path", False) and sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from crowguard.cli.app import main  # noqa: E402 - must follow the sys.path fix above

if __name__ == "__main__":
    main()
