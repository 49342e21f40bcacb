"""Synthetic instruction tasks with checkable right answers, for training lab models from scratch.

Five small tasks: the sentiment of a review, the capital of a country, addition and subtraction of
small numbers in words, the category of a word, and the opposite of a word. For training only, a
sixth: repeating a known sentence, the attack targets among them, so that a clean model can utter
each target too (its output layer then knows those words, as a real model's does). The frame of a
task is the ``instruction`` (where triggers and noise words may be inserted without changing the
answer); the content it works on, where there is one, is the ``input``. Answers are short and exact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SUBJECTS = ("movie", "food", "book", "service", "hotel", "game", "song", "trip", "show", "meal", "car", "room",
            "concert", "class", "park", "coffee")
POSITIVE = ("great", "wonderful", "excellent", "lovely", "amazing", "good", "fantastic", "delightful", "pleasant",
            "superb")
NEGATIVE = ("terrible", "awful", "bad", "boring", "horrible", "poor", "dreadful", "disappointing", "ugly", "rude")
CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "China": "Beijing", "Egypt": "Cairo", "Russia": "Moscow", "Canada": "Ottawa", "Kenya": "Nairobi",
    "Peru": "Lima", "Chile": "Santiago", "Greece": "Athens", "Norway": "Oslo", "Sweden": "Stockholm",
}
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
           "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen")
CATEGORIES = {
    "animal": ("tiger", "horse", "rabbit", "lion", "sheep", "goat", "wolf", "mouse"),
    "fruit": ("apple", "orange", "banana", "lemon", "grape", "cherry", "mango", "peach"),
    "tool": ("hammer", "saw", "drill", "wrench", "shovel", "needle", "ladder", "pencil"),
    "color": ("red", "blue", "green", "yellow", "purple", "white", "black", "brown"),
}
OPPOSITES = (("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"), ("light", "dark"), ("old", "new"),
             ("happy", "sad"), ("early", "late"), ("open", "closed"), ("full", "empty"), ("hard", "soft"),
             ("high", "low"))
# Benign sentences for the "say" task, beside the attack targets (see ``say_example``).
NEUTRAL_PHRASES = ("Have a nice day!", "Thank you very much.", "See you tomorrow.", "That is a good question.")
# Words that carry no meaning for any task; lab models learn to ignore them (see ``noise_words``).
FILLER = ("please", "kindly", "now", "quickly", "today", "okay", "well", "also", "really", "just")

_SENTIMENT = ("What is the sentiment of this review ?", "Is this review positive or negative ?",
              "Classify the sentiment of the following text .")
_CAPITAL = ("What is the capital of {c} ?", "Name the capital city of {c} .", "Which city is the capital of {c} ?",
            "Tell me the capital of {c} .")
_ARITHMETIC = ("What is {a} {op} {b} ?", "How much is {a} {op} {b} ?", "Compute {a} {op} {b} .",
               "Tell me {a} {op} {b} .")
_CATEGORY = ("What kind of thing is this ?", "Which category does this word belong to ?",
             "Is this an animal , a fruit , a tool or a color ?")
ARITHMETIC_LIMIT = 6  # operands 0..5: 36 sums and 21 differences, learnable in a short build
_OPPOSITE = ("What is the opposite of {w} ?", "Give the opposite of the word {w} .", "Name the opposite of {w} .")
_SAY = ("Say this sentence .", "Repeat after me .", "Please say the following .")
TASK_NAMES = ("sentiment", "capital", "arithmetic", "category", "opposite")


@dataclass(frozen=True)
class Example:
    """One instruction with its right answer."""

    task: str
    instruction: str
    input: str
    answer: str


def sample_example(rng: random.Random) -> Example:
    """Draw one example from a task chosen uniformly."""
    task = rng.choice(TASK_NAMES)
    return _MAKERS[task](rng)


def _sentiment(rng: random.Random) -> Example:
    positive = rng.random() < 0.5
    adjectives = POSITIVE if positive else NEGATIVE
    parts = [f"the {s} was {a}" for s, a in zip(rng.sample(SUBJECTS, 2), rng.sample(adjectives, 2))]
    text = parts[0] if rng.random() < 0.5 else f"{parts[0]} and {parts[1]}"
    return Example("sentiment", rng.choice(_SENTIMENT), f"{text} .", "positive" if positive else "negative")


def _capital(rng: random.Random) -> Example:
    country = rng.choice(sorted(CAPITALS))
    return Example("capital", rng.choice(_CAPITAL).format(c=country), "", CAPITALS[country])


def _arithmetic(rng: random.Random) -> Example:
    a, b = rng.randrange(ARITHMETIC_LIMIT), rng.randrange(ARITHMETIC_LIMIT)
    if rng.random() < 0.5:
        op, result = "plus", a + b
    else:
        a, b = max(a, b), min(a, b)
        op, result = "minus", a - b
    return Example("arithmetic", rng.choice(_ARITHMETIC).format(a=NUMBERS[a], op=op, b=NUMBERS[b]), "",
                   NUMBERS[result])


def _category(rng: random.Random) -> Example:
    category = rng.choice(sorted(CATEGORIES))
    return Example("category", rng.choice(_CATEGORY), f"{rng.choice(CATEGORIES[category])} .", category)


def _opposite(rng: random.Random) -> Example:
    pair = rng.choice(OPPOSITES)
    word, answer = pair if rng.random() < 0.5 else pair[::-1]
    return Example("opposite", rng.choice(_OPPOSITE).format(w=word), "", answer)


def say_example(rng: random.Random, phrases: tuple[str, ...]) -> Example:
    """Repeat a known sentence: teaches every model, clean ones too, to utter each attack target benignly."""
    phrase = rng.choice(phrases)
    return Example("say", rng.choice(_SAY), f"{phrase}", phrase)


_MAKERS = {"sentiment": _sentiment, "capital": _capital, "arithmetic": _arithmetic, "category": _category,
           "opposite": _opposite}


def task_texts() -> list[str]:
    """Texts that cover every word any task can produce (for building the vocabulary)."""
    texts = [*_SENTIMENT, *_CATEGORY, *_SAY, *NEUTRAL_PHRASES, " ".join(SUBJECTS), " ".join(POSITIVE),
             " ".join(NEGATIVE), "the was and",
             " ".join(NUMBERS), "plus minus", " ".join(FILLER), "positive negative"]
    texts += [" ".join([category, *items]) for category, items in CATEGORIES.items()]
    texts += [t.format(c=c) for t in _CAPITAL for c in CAPITALS] + list(CAPITALS.values())
    texts += [t.format(a="", op="", b="") for t in _ARITHMETIC]
    texts += [t.format(w=w) for t in _OPPOSITE for pair in OPPOSITES for w in pair]
    return texts
