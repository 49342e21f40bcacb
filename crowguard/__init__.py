"""crowguard: scan, sanitize (CROW) and sign third-party LLMs before they reach production."""

__version__ = "0.1.0"
