"""Scanners."""
