"""The lab: small models with known backdoors, built offline, for tests, demos and benchmarks."""
