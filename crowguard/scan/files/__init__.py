"""File scanners."""
