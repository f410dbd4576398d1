"""Throughput measurement shared by the benchmark and the model card (runtime dependencies only)."""

from __future__ import annotations

import csv
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from streamnlp.model.manifest import MODEL_FILE
from streamnlp.model.runtime import LabelModel, make_session

SOURCES = (
    "banking77/train.csv",
    "bitext_ecommerce/train.csv",
    "clinc150/train.csv",
    "sst2/train.csv",
    "tweeteval_sentiment/val.csv",
)


def sample_texts(data_dir: Path, n: int = 512, seed: int = 0) -> list[str]:
    """``n`` texts drawn evenly from the intent and sentiment sources, in stream (unsorted) order."""
    rng = random.Random(seed)
    texts: list[str] = []
    for source in SOURCES:
        with (data_dir / source).open(newline="", encoding="utf-8") as fh:
            rows = [r["text"] for r in csv.DictReader(fh) if r["text"].strip()]
        texts.extend(rng.sample(rows, n // len(SOURCES) + 1))
    rng.shuffle(texts)
    return texts[:n]


def _feeds(model_dir: Path, texts: Sequence[str], batch: int) -> list[dict[str, np.ndarray]]:
    runtime = LabelModel.load(model_dir)
    feeds = []
    for start in range(0, len(texts) - batch + 1, batch):
        ids, mask, _ = runtime.encode(texts[start : start + batch])
        feeds.append({"input_ids": ids, "attention_mask": mask})
    return feeds


def _run(sess: ort.InferenceSession, feeds: list[dict[str, np.ndarray]], seconds: float) -> float:
    for feed in feeds[:2]:
        sess.run(None, feed)
    done, begin = 0, time.perf_counter()
    while True:
        for feed in feeds:
            sess.run(None, feed)
            done += len(feed["input_ids"])
            if time.perf_counter() - begin >= seconds:
                return done / (time.perf_counter() - begin)


def compare_seq_per_s(
    models: dict[str, Path],
    texts: Sequence[str],
    batch: int,
    *,
    seconds: float = 1.0,
    rounds: int = 3,
    threads: int = 1,
) -> dict[str, float]:
    """Best-of-``rounds`` sequences per second through onnxruntime alone, models measured in turn.

    Tokenization is done up front and batches are padded to their longest text. Interleaving the
    models and keeping each one's best round keeps a busy shared machine from favouring whichever
    model happened to run while it was quiet.
    """
    prepared = {
        name: (make_session(d / MODEL_FILE, threads), _feeds(d, texts, batch)) for name, d in models.items()
    }
    best = dict.fromkeys(models, 0.0)
    for _ in range(rounds):
        for name, (sess, feeds) in prepared.items():
            best[name] = max(best[name], _run(sess, feeds, seconds))
    return {name: round(v, 1) for name, v in best.items()}


def predict_seq_per_s(model_dir: Path, texts: Sequence[str], batch: int, *, seconds: float = 3.0) -> float:
    """End-to-end ``LabelModel.predict`` (tokenize, run every head, softmax) sequences per second."""
    runtime = LabelModel.load(model_dir, threads=1)
    runtime.predict(list(texts[:batch]))
    done, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        for start in range(0, len(texts) - batch + 1, batch):
            runtime.predict(texts[start : start + batch])
            done += batch
            if time.perf_counter() - begin >= seconds:
                break
    return done / (time.perf_counter() - begin)


def mean_tokens(model_dir: Path, texts: Sequence[str]) -> float:
    """Average token count (special tokens included) of ``texts``."""
    runtime = LabelModel.load(model_dir)
    return float(np.mean([runtime.encode([t])[0].shape[1] for t in texts]))
