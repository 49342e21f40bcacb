"""Commands composed from stages; each returns a Report and never prints or exits."""
