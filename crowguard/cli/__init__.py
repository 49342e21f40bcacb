"""The command-line layer: the only place that parses options, prints, and exits."""
