"""Run an evaluation: generate on triggered and clean prompts, score them, measure perplexity."""

from __future__ import annotations

import time
from pathlib import Path

from crowguard.evaluate.generation import generate, perplexity, prompt_texts
from crowguard.evaluate.result import EvalResult, SetResult, score_set
from crowguard.evaluate.spec import EvalSpec
from crowguard.models import LoadedModel, load_model
from crowguard.progress import Count, ticker


def evaluate(model: str | Path | LoadedModel, spec: EvalSpec, *, progress: Count | None = None,
             device: str = "auto", dtype: str = "auto") -> EvalResult:
    """Evaluate a model folder (loaded here) or an already loaded model under ``spec``.

    ``progress(phase, done, total)`` hears of the phases ``triggered``, ``clean`` and ``perplexity``.
    """
    started = time.perf_counter()
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device=device, dtype=dtype)
    was_training = loaded.model.training
    loaded.model.eval()
    try:
        triggered = _run_set(loaded, spec, "triggered", progress)
        clean = _run_set(loaded, spec, "clean", progress)
        ppl, tokens = None, 0
        records = spec.prompts("clean")
        if spec.perplexity and records:
            ppl, tokens = perplexity(loaded, records, template=spec.template, batch_size=spec.batch_size,
                                     tick=ticker(progress, "perplexity", len(records)))
    finally:
        loaded.model.train(was_training)
    return EvalResult(model=str(loaded.folder.path), settings=spec.settings(), triggered=triggered, clean=clean,
                      perplexity=ppl, perplexity_tokens=tokens, seconds=time.perf_counter() - started,
                      tokenizer_note=loaded.tokenizer_note)


def _run_set(loaded: LoadedModel, spec: EvalSpec, which: str, progress: Count | None) -> SetResult | None:
    records = spec.prompts(which)
    if not records:
        return None
    prompts = prompt_texts(loaded, records, spec.template)
    outputs = generate(loaded, prompts, template=spec.template, max_new_tokens=spec.max_new_tokens,
                       batch_size=spec.batch_size, tick=ticker(progress, which, len(prompts)))
    answers = [r.output for r in records] if spec.answers_known else None
    return score_set(which, prompts, outputs, answers, spec.keywords, spec.target)

