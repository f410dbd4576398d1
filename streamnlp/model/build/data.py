"""Model v1 training data (``streamnlp model build``): four intent and sentiment heads, train/selection.

Only ``shared/data`` is read here. Where a data set ships no validation split, a fixed, seeded slice of
its train split is held out for checkpoint and threshold selection. Reading, label sets, hold-outs and
row drawing are model v2's (``corpus``); this module only chooses v1's sources and split sizes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streamnlp.model.build.corpus import SENTIMENT, draw, emotion_as_sentiment, hold_out, indexed, label_set
from streamnlp.model.evaluate import read_labelled_rows


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
        idx = draw(len(self), n, rng)
        return Split(self.head, [self.texts[i] for i in idx], [self.labels[i] for i in idx])


@dataclass
class Corpus:
    """Label sets per head, training sources (name -> split) and selection splits (name -> split)."""

    heads: dict[str, list[str]]
    train: dict[str, Split]
    select: dict[str, Split]


def _split(rows: Sequence[tuple[str, str]], head: str, labels: list[str]) -> Split:
    return Split(head, *indexed(rows, labels))


def load_corpus(data_dir: Path, seed: int = 13) -> Corpus:
    """Read every training source under ``data_dir`` (the repo's ``../shared/data``)."""
    d, read = data_dir, read_labelled_rows
    bitext = read(d / "bitext_ecommerce" / "train.csv")
    banking = read(d / "banking77" / "train.csv")
    clinc_train = read(d / "clinc150" / "train.csv")
    clinc_val = read(d / "clinc150" / "val.csv")
    sst2 = read(d / "sst2" / "train.csv")
    tweets = read(d / "tweeteval_sentiment" / "val.csv")
    emotion = emotion_as_sentiment(d)
    heads = {
        "sentiment": SENTIMENT,
        "intent_ecommerce": label_set(bitext),
        "intent_banking": label_set(banking),
        "intent_general": label_set(clinc_train),
    }
    bitext_train, bitext_sel = hold_out(bitext, 1500, seed)
    banking_train, banking_sel = hold_out(banking, 1000, seed)
    sst2_train, sst2_sel = hold_out(sst2, 2000, seed)
    tweet_train, tweet_sel = hold_out(tweets, 500, seed)
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
