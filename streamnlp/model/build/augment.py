"""New review sentences for distillation: SST-2 training sentences with one or two of their phrases swapped
for other SST-2 training phrases of the same length.

Why: SST-2's rows are the phrases of some 8.5k training sentences, so a student fine-tuned on them learns
those sentences by heart (held-out training sentences, whose phrases it has seen, read 90) yet reads new
reviews at about 81, while the fine-tuned teacher reads them at 90. Recombined sentences are text that
neither has seen, with polarity built the way reviews build it; the teacher's labels on them carry how it
composes sentiment, and, like every soft label, they are computed once and stored, so training never runs
the teacher. Only training rows go in, so the held-out selection sentences stay unseen."""

from __future__ import annotations

import random
from collections.abc import Sequence

SPAN_WORDS = range(2, 9)  # lengths (in words) of the phrases that are swapped
MAX_SWAPS = 2


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
    seen, out = set(sentences), []
    for _ in range(20 * n):
        if len(out) >= n or not sentences:
            break
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
        text = " ".join(words)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
