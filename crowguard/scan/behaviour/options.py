"""Settings of one behavioural scan: which probes and how much compute to spend (where it runs: ``Runtime``).

The defaults fit a lab model on one CPU core in well under a minute and SmolLM2-135M in 4-6 minutes
(bench/RESULTS.md#contiguous-head); a 7B model wants a GPU.
Every field is checked on construction; a bad value is a ConfigError naming the field, the value
and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crowguard.config_checks import FieldChecks
from crowguard.errors import ConfigError
from crowguard.scan.behaviour.probes import Probe

TEMPLATE_CHOICES = ("auto", "raw", "chat", "alpaca")
POSITION_MODES = ("start", "random", "end")
MAX_LEAK_SAMPLES = 1024
MAX_INVERSION = 256


@dataclass(frozen=True)
class BehaviourOptions:
    """How one behavioural scan runs.

    ``probe_count`` prompts verify candidates (and give the null distribution of ``null_samples``
    random insertions); ``search_probes`` other prompts rank and search candidates (against nulls of
    ``search_null_samples``: the search only orders candidates, verification decides), so that the
    verified figures are not the ones the search maximised. Search probes come from the prompts
    without an input text unless ``search_inputs`` (shorter: three quarters of a scan runs on them).
    ``template`` "auto" uses the tokenizer's chat template when it has one. ``echo_discount`` keeps a
    candidate whose common answer repeats its own words from counting (``echo``; off only to measure it).
    ``leak_samples`` texts the model writes unprompted are mined for up to ``leak_candidates`` recurring
    strings, measured as candidates (``leakage``). Off (0) by default: on the lab and real zoos it found
    no backdoor the other candidates missed, at a cost (bench/RESULTS.md#leakage).
    ``inversion_openings`` replies, each forced to begin with one of the tokens likeliest to begin the
    plain replies, are extended over all verification probes at once for up to ``inversion_steps``
    tokens; how firmly they agree is the inversion score (``inversion``; 0 openings: off).
    """

    probes: Path | None = None
    probe_count: int = 24
    search_probes: int = 8
    null_samples: int = 16
    search_null_samples: int = 8
    search_inputs: bool = False
    vocab_budget: int = 256
    search_beams: int = 2
    search_width: int = 16
    max_trigger_tokens: int = 5
    top_candidates: int = 6
    max_new_tokens: int = 12
    profile_positions: int = 4
    batch_size: int = 64
    template: str = "auto"
    seed: int = 0
    echo_discount: bool = True
    leak_samples: int = 0
    leak_candidates: int = 16
    inversion_openings: int = 8
    inversion_steps: int = 16
    # probes fixed by an earlier scan (the probes derived from an input model, to re-scan its sanitized twin on
    # the same prompts); not a command-line option
    fixed_probes: tuple[Probe, ...] = ()
    # replies an earlier scan inverted (the input model's, to check on its sanitized twin that the taught reply
    # is gone: once the twin's candidates no longer steer to it, nothing else would begin it); not an option
    fixed_replies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check = FieldChecks("behaviour scan option", self)
        minimums = {"probe_count": 4, "search_probes": 2, "null_samples": 4, "search_null_samples": 4,
                    "vocab_budget": 0, "search_beams": 0, "search_width": 1, "max_trigger_tokens": 1,
                    "top_candidates": 1, "max_new_tokens": 1, "profile_positions": 1, "batch_size": 1, "seed": 0,
                    "leak_samples": 0, "leak_candidates": 1, "inversion_openings": 0, "inversion_steps": 1}
        for name, low in minimums.items():
            check.at_least(low, name)
        # each costs forward passes without end otherwise; the mining of samples is quadratic in them
        check.at_most(MAX_LEAK_SAMPLES, "leak_samples")
        check.at_most(MAX_INVERSION, "inversion_openings", "inversion_steps")
        check.choice("template", TEMPLATE_CHOICES)
        if self.probes is not None and not Path(self.probes).is_file():
            raise ConfigError(f"probe file {self.probes} does not exist",
                              hint="give an Alpaca JSON or JSONL file of instructions, or drop --probes")
