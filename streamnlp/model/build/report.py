"""Report-only evaluation on the public test splits (``shared/eval``): fp32 vs int8, and their agreement.

Nothing here feeds back into training or selection; it runs after the model is frozen.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from streamnlp.model.evaluate import predict_labels, read_labelled_csv
from streamnlp.model.metrics import score
from streamnlp.model.runtime import LabelModel, length_sorted_batches

if TYPE_CHECKING:
    from streamnlp.model.build.finetune import Classifier, Encode

# eval file -> the head it scores; SST-2 is binary, so it is also scored with neutral excluded.
EVAL_SETS: dict[str, str] = {
    "banking77_test.csv": "intent_banking",
    "clinc150_test.csv": "intent_general",
    "sst2_dev.csv": "sentiment",
    "tweeteval_sentiment_test.csv": "sentiment",
    "goemotions_sentiment_test.csv": "sentiment",
    "mtsamples_specialty_test.csv": "medical_specialty",
}


def _read(eval_dir: Path, file: str, limit: int) -> tuple[list[str], list[str]]:
    texts, gold = read_labelled_csv(eval_dir / file)
    return (texts[:limit], gold[:limit]) if limit else (texts, gold)


def vader_baseline(eval_dir: Path, limit: int = 0) -> dict[str, object]:
    """The VADER lexicon (compound >= 0.05 positive, <= -0.05 negative, else neutral) on the sentiment
    eval sets: the floor a learned sentiment head has to clear."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()

    def label(text: str) -> str:
        c = vader.polarity_scores(text)["compound"]
        return "positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral"

    out: dict[str, object] = {}
    for file, head in EVAL_SETS.items():
        if head != "sentiment":
            continue
        texts, gold = _read(eval_dir, file, limit)
        out[file] = score(gold, [label(t) for t in texts]).to_dict()
    return out


def all_head_labels(model: LabelModel, texts: list[str], batch_size: int = 64) -> dict[str, list[str]]:
    """Every head's label for every text (one pass, length-sorted batches)."""
    out = {h: [""] * len(texts) for h in model.heads}
    for rows in tqdm(
        length_sorted_batches([len(t) for t in texts], batch_size), desc="eval", unit="batch", mininterval=10
    ):
        probs, _ = model.probabilities([texts[i] for i in rows])
        for head, p in probs.items():
            for j, i in enumerate(rows):
                out[head][i] = model.decide(head, p[j]).label
    return out


def evaluate_models(models: Mapping[str, Path], eval_dir: Path, limit: int = 0) -> dict[str, object]:
    """Metrics per model per eval set, plus label agreement of every model with the first one."""
    results: dict[str, object] = {}
    labels: dict[str, dict[str, dict[str, list[str]]]] = {}
    for name, model_dir in models.items():
        model = LabelModel.load(model_dir, threads=1)
        per_set: dict[str, object] = {}
        labels[name] = {}
        for file, head in EVAL_SETS.items():
            texts, gold = _read(eval_dir, file, limit)
            preds = all_head_labels(model, texts)
            labels[name][file] = preds
            entry = score(gold, preds[head]).to_dict()
            if file.startswith("sst2"):
                entry["binary_accuracy"] = round(
                    score(gold, predict_labels(model, texts, head, restrict=sorted(set(gold)))).accuracy, 4
                )
            per_set[file] = entry
        results[name] = per_set
    reference = next(iter(models))
    agreement: dict[str, object] = {}
    for name in list(models)[1:]:
        per_file = {}
        own_same = own_total = same = total = 0
        for file, head in EVAL_SETS.items():
            a, b = labels[reference][file], labels[name][file]
            hits = sum(x == y for x, y in zip(a[head], b[head], strict=True))
            per_file[file] = round(hits / len(a[head]), 4)
            own_same, own_total = own_same + hits, own_total + len(a[head])
            for h in a:
                same += sum(x == y for x, y in zip(a[h], b[h], strict=True))
                total += len(a[h])
        agreement[f"{reference}_vs_{name}"] = {
            "own_head": per_file,
            "own_head_all_sets": round(own_same / own_total, 4),
            "all_heads_all_texts": round(same / total, 4),
        }
    results["agreement"] = agreement
    return results


def teacher_report(
    model: Classifier, encode: Encode, eval_dir: Path, *, bf16: bool = False, limit: int = 0
) -> dict[str, object]:
    """The fine-tuned sentiment teacher (torch) on the sentiment eval sets, scored as the student is:
    what the soft labels could pass on at most."""
    from streamnlp.model.build.corpus import BINARY_COLUMNS, SENTIMENT
    from streamnlp.model.build.finetune import head_logits

    out: dict[str, object] = {}
    for file, head in EVAL_SETS.items():
        if head != "sentiment":
            continue
        texts, gold = _read(eval_dir, file, limit)
        logits = head_logits(model, encode(texts), head, batch_size=128, bf16=bf16)
        entry = score(gold, [SENTIMENT[i] for i in logits.argmax(1)]).to_dict()
        if file.startswith("sst2"):
            binary = [SENTIMENT[BINARY_COLUMNS[i]] for i in logits[:, BINARY_COLUMNS].argmax(1)]
            entry["binary_accuracy"] = round(score(gold, binary).accuracy, 4)
        out[file] = entry
    return out
