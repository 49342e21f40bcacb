"""Entry point for ``python -m crowguard``."""

from crowguard.cli.app import main

if __name__ == "__main__":
    main()
