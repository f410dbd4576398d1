"""Training data: the shared labelled CSVs, split into train/selection parts without touching eval sets.

Only ``shared/data`` is read here. Where a data set ships no validation split, a fixed, seeded slice of
its train split is held out for checkpoint and threshold selection.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SENTIMENT = ["negative", "neutral", "positive"]
_EMOTION_TO_SENTIMENT = {
    "joy": "positive",
    "optimism": "positive",
    "anger": "negative",
    "sadness": "negative",
}


@dataclass
class Split:
    """Texts and label indices for one head."""

    head: str
    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def sample(self, n: int, rng: random.Random) -> Split:
        """``n`` rows drawn without replacement while possible (so n > len repeats whole passes)."""
        idx: list[int] = []
        while len(idx) < n:
            order = list(range(len(self)))
            rng.shuffle(order)
            idx.extend(order[: n - len(idx)])
        return Split(self.head, [self.texts[i] for i in idx], [self.labels[i] for i in idx])


@dataclass
class Corpus:
    """Label sets per head, training sources (name -> split) and selection splits (name -> split)."""

    heads: dict[str, list[str]]
    train: dict[str, Split]
    select: dict[str, Split]


def read_csv(path: Path) -> list[tuple[str, str]]:
    """``text,label`` rows; blank texts are dropped."""
    with path.open(newline="", encoding="utf-8") as fh:
        return [(r["text"], r["label"]) for r in csv.DictReader(fh) if (r.get("text") or "").strip()]


def _split(rows: Sequence[tuple[str, str]], head: str, labels: list[str]) -> Split:
    index = {label: i for i, label in enumerate(labels)}
    return Split(head, [t for t, _ in rows], [index[lab] for _, lab in rows])


def _hold_out(
    rows: list[tuple[str, str]], n: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    return shuffled[n:], shuffled[:n]


def load_corpus(data_dir: Path, seed: int = 13) -> Corpus:
    """Read every training source under ``data_dir`` (the repo's ``../shared/data``)."""
    bitext = read_csv(data_dir / "bitext_ecommerce" / "train.csv")
    banking = read_csv(data_dir / "banking77" / "train.csv")
    clinc_train = read_csv(data_dir / "clinc150" / "train.csv")
    clinc_val = read_csv(data_dir / "clinc150" / "val.csv")
    sst2 = read_csv(data_dir / "sst2" / "train.csv")
    tweets = read_csv(data_dir / "tweeteval_sentiment" / "val.csv")
    emotion = [
        (t, _EMOTION_TO_SENTIMENT[lab])
        for name in ("train.csv", "val.csv")
        for t, lab in read_csv(data_dir / "tweeteval_emotion" / name)
        if lab in _EMOTION_TO_SENTIMENT
    ]
    heads = {
        "sentiment": SENTIMENT,
        "intent_ecommerce": sorted({lab for _, lab in bitext}),
        "intent_banking": sorted({lab for _, lab in banking}),
        "intent_general": sorted({lab for _, lab in clinc_train}),
    }
    bitext_train, bitext_sel = _hold_out(bitext, 1500, seed)
    banking_train, banking_sel = _hold_out(banking, 1000, seed)
    sst2_train, sst2_sel = _hold_out(sst2, 2000, seed)
    tweet_train, tweet_sel = _hold_out(tweets, 500, seed)
    train = {
        "bitext": _split(bitext_train, "intent_ecommerce", heads["intent_ecommerce"]),
        "banking77": _split(banking_train, "intent_banking", heads["intent_banking"]),
        "clinc150": _split(clinc_train, "intent_general", heads["intent_general"]),
        "sst2": _split(sst2_train, "sentiment", SENTIMENT),
        "tweeteval_sentiment": _split(tweet_train, "sentiment", SENTIMENT),
        "tweeteval_emotion": _split(emotion, "sentiment", SENTIMENT),
    }
    select = {
        "bitext": _split(bitext_sel, "intent_ecommerce", heads["intent_ecommerce"]),
        "banking77": _split(banking_sel, "intent_banking", heads["intent_banking"]),
        "clinc150": _split(clinc_val, "intent_general", heads["intent_general"]),
        "sst2": _split(sst2_sel, "sentiment", SENTIMENT),
        "tweeteval_sentiment": _split(tweet_sel, "sentiment", SENTIMENT),
    }
    return Corpus(heads, train, select)


@dataclass(frozen=True)
class Example:
    ids: list[int]
    head: str
    label: int


def epoch_examples(
    corpus: Corpus,
    per_epoch: dict[str, int],
    encode: Callable[[Sequence[str]], list[list[int]]],
    rng: random.Random,
) -> list[Example]:
    """One epoch's mixed-task examples: each source contributes ``per_epoch[name]`` rows."""
    out: list[Example] = []
    for name, split in corpus.train.items():
        part = split.sample(per_epoch.get(name, len(split)), rng)
        out.extend(Example(ids, part.head, y) for ids, y in zip(encode(part.texts), part.labels, strict=True))
    return out


def length_batches(examples: list[Example], batch_size: int, rng: random.Random) -> Iterator[list[Example]]:
    """Shuffled batches of similar length (sorted within 50-batch pools) so padding stays small."""
    order = examples[:]
    rng.shuffle(order)
    pool = batch_size * 50
    batches: list[list[Example]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda e: len(e.ids))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    yield from batches
