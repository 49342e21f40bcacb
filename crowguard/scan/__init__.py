"""Scanners behind one interface (``interface.py``): the file scan today, the behavioural scan next."""
