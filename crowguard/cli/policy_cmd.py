"""``crowguard policy check``: validate a policy file and print it with every default filled in."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from crowguard.cli.guard import guarded, stderr
from crowguard.policy import load_policy

app = typer.Typer(help="Inspect gate policies.", no_args_is_help=True)


@app.command("check")
@guarded
def check(policy: Path = typer.Argument(..., help="Shipped policy (default, strict, permissive) or a YAML file.")
          ) -> int:
    """Validate POLICY; print the effective policy (defaults filled in) as YAML on stdout."""
    loaded = load_policy(policy)
    typer.echo(yaml.safe_dump(loaded.model_dump(mode="json"), sort_keys=False), nl=False)
    stderr.print(f"[green]policy {policy} is valid[/]")
    return 0
