"""New review sentences for distillation: SST-2 training sentences with one or two of their phrases swapped
for other SST-2 training phrases of the same length.

Why: SST-2's rows are the phrases of some 8.5k training sentences, so a student fine-tuned on them learns
those sentences by heart (held-out training sentences, whose phrases it has seen, read 90) yet reads new
reviews at about 81, while the fine-tuned teacher reads them at 90. Recombined sentences are text that
neither has seen, with polarity built the way reviews build it; the teacher's labels on them carry how it
composes sentiment, and, like every soft label, they are computed once and stored, so training never runs
the teacher. Only training rows go in, so the held-out selection sentences stay unseen.

Contrast and negation frames (:func:`contrast`) aim at what recombination leaves out: the student reads
"not bad at all, better than I expected" and "the plot is thin but the performances make it worth
watching" as negative (its cue words win), while the teacher reads both as positive. Training phrases
of opposite polarity joined by "but", "although", "yet" ..., or put under a negation, give the teacher
sentences whose polarity is decided by their structure, not by their words.

Mixed requests (:func:`swap_content`) do the same for an intent head: Bitext's rows are a few templates
filled with a few content words ("ticket delivery options"), so the student keys on words that real
customers do not use, while the intent teacher reads requests in other words far better. A training row
with one or two of its content words swapped for content words of other rows ("the options for package
delivery", "track my refund invoice") is a request near the head's decision boundaries that neither has
seen; the teacher's label says which intent it is nearest."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

SPAN_WORDS = range(2, 9)  # lengths (in words) of the phrases that are swapped
MAX_SWAPS = 2
POOL_MIN_COUNT = 5  # a content word swapped in occurs in at least this many rows


def _distinct(make: Callable[[], str | None], n: int, seen: set[str]) -> list[str]:
    """Up to ``n`` texts from ``make`` (None: nothing this try) that are not in ``seen``, each once, in
    20 * ``n`` tries at most: the draw loop every augmenter shares."""
    out: list[str] = []
    for _ in range(20 * n):
        if len(out) >= n:
            break
        text = make()
        if text is not None and text not in seen:
            seen.add(text)
            out.append(text)
    return out


def recombine(sentences: Sequence[str], phrases: Sequence[str], n: int, seed: int) -> list[str]:
    """Up to ``n`` distinct new sentences, the same for the same inputs and ``seed``: each is one of
    ``sentences`` with 1..MAX_SWAPS of its word spans that are themselves ``phrases`` replaced by a random
    phrase of the same length. Fewer come back only when the sentences hold too few such spans."""
    by_len: dict[int, list[str]] = {}
    for phrase in sorted(set(phrases)):  # sorted: the output does not depend on the input's order
        k = len(phrase.split())
        if k in SPAN_WORDS:
            by_len.setdefault(k, []).append(phrase)
    pool = {p for group in by_len.values() for p in group}
    rng = random.Random(seed)

    def make() -> str:
        words = rng.choice(sentences).split()
        for _ in range(rng.randint(1, MAX_SWAPS)):
            spans = [
                (a, a + k)
                for k in SPAN_WORDS
                for a in range(len(words) - k + 1)
                if " ".join(words[a : a + k]) in pool
            ]
            if not spans:
                break
            a, b = rng.choice(spans)
            words[a:b] = rng.choice(by_len[b - a]).split()
        return " ".join(words)

    return _distinct(make, n, set(sentences)) if sentences else []


# Two phrases, usually of opposite polarity: which one decides is the structure's doing ("a, but b").
CONTRAST_FRAMES = (
    "{a} , but {b}",
    "{a} but {b}",
    "although {a} , {b}",
    "{a} ; however , {b}",
    "{a} , yet {b}",
    "{a} . still , {b}",
    "{a} , though {b}",
    "while {a} , {b}",
    "at first {a} , but then {b}",
    "i expected {a} , but {b}",
    "{a} ... or so i thought . {b}",
    "not {a} , but {b}",
    "it 's not that {a} , it 's just {b}",
    "sure , {a} , but {b}",
    "{a} , and yet {b}",
    "{b} , even if {a}",
    "{b} , despite {a}",
    "{b} , although {a}",
)
# One phrase under a negation.
NEGATION_FRAMES = (
    "not {a}",
    "it 's not {a}",
    "it is not {a} at all",
    "never {a}",
    "hardly {a}",
    "far from {a}",
    "i would n't call it {a}",
    "{a} ? not really .",
    "not exactly {a}",
    "it was n't {a}",
    "i did n't find it {a}",
    "anything but {a}",
    "no , not {a}",
)
PHRASE_WORDS = range(2, 11)  # lengths (in words) of the phrases that fill a frame
SAME_POLARITY = 0.2  # share of contrast frames filled with two phrases of the same polarity
NEGATED = 0.3  # share of negation frames among the sentences made


def contrast(phrases: Sequence[tuple[str, str]], n: int, seed: int) -> list[str]:
    """Up to ``n`` distinct sentences, the same for the same inputs and ``seed``: labelled phrases
    (``(text, "negative" | "positive")``, PHRASE_WORDS long) put into a contrast frame, two of them,
    usually of opposite polarity, or into a negation frame, one. They carry no label: the teacher's
    reading is their label."""
    by_label: dict[str, list[str]] = {}
    for text, label in sorted(set(phrases)):  # sorted: the output does not depend on the input's order
        text = text.strip(" ,.;:-")  # a frame brings its own punctuation
        if len(text.split()) in PHRASE_WORDS and text[0].isalnum():  # not a clitic's tail ("'s ...")
            by_label.setdefault(label, []).append(text)
    if len(by_label) < 2:
        raise ValueError(f"contrast needs phrases of two polarities, got {sorted(by_label) or 'none'}")
    polarities = sorted(by_label)
    rng = random.Random(seed)

    def make() -> str:
        first = rng.choice(polarities)
        a = rng.choice(by_label[first])
        if rng.random() < NEGATED:
            return rng.choice(NEGATION_FRAMES).format(a=a)
        other = first if rng.random() < SAME_POLARITY else next(p for p in polarities if p != first)
        return rng.choice(CONTRAST_FRAMES).format(a=a, b=rng.choice(by_label[other]))

    return _distinct(make, n, set())


def swap_content(texts: Sequence[str], function_words: frozenset[str], n: int, seed: int) -> list[str]:
    """Up to ``n`` distinct new texts, the same for the same inputs and ``seed``: each is one of ``texts``
    (lower-cased, split on spaces) with 1..MAX_SWAPS of its content words (words not in
    ``function_words``) replaced by a content word of other texts, one of at least ``POOL_MIN_COUNT``
    (Bitext misspells on purpose: a rare word is mostly a typo)."""
    from collections import Counter

    def content(word: str) -> bool:  # a bare word (no punctuation, no apostrophe) that carries content
        return word.isalpha() and word.isascii() and word not in function_words

    rows = [t.lower().split() for t in sorted(set(texts))]
    counts = Counter(w for words in rows for w in words if content(w))
    pool = sorted(w for w, k in counts.items() if k >= POOL_MIN_COUNT)
    rng = random.Random(seed)

    def make() -> str | None:
        words = list(rng.choice(rows))
        slots = [i for i, w in enumerate(words) if content(w)]
        if not slots:
            return None
        for i in rng.sample(slots, min(len(slots), rng.randint(1, MAX_SWAPS))):
            words[i] = rng.choice(pool)
        return " ".join(words)

    return _distinct(make, n, {" ".join(words) for words in rows}) if pool else []
