"""Inference for the shipped model: onnxruntime + tokenizers only, safe to call from worker threads.

A batch runs as length-sorted chunks, each padded to its own longest text, not to ``max_length``: on
CPU a 128-token pad costs several times what the typical 20-30 token message needs.

Encoder heads read a text's first ``max_length`` tokens. A model may also carry *whole-text* heads
(``whole_text.onnx``, a linear model over word-piece counts, for long notes): they read up to
``whole_text.max_tokens`` tokens of each text, so a label's ``truncated`` flag is set only when a
requested head read less than the whole text. A call asking for both families tokenizes each text once:
the encoder's window is cut from the same word pieces, with the special tokens of its own encoding.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from streamnlp._errors import ModelError
from streamnlp.model.labels import Label, Labels
from streamnlp.model.manifest import (
    LABELS_FILE,
    MANIFEST,
    MODEL_FILE,
    TOKENIZER_FILE,
    WHOLE_TEXT_FILE,
    read_json,
    sha256,
)

__all__ = ["CHUNK", "DISABLED_OPTIMIZERS", "LabelModel", "ModelError", "make_session", "pad", "verify"]

# Re-measured on the shipped int8 model (1 thread, best of 3 interleaved rounds): with the fused
# SkipLayerNormalization kernel it ran 952 / 489 seq/s at batch 1 / 32; with the fusion disabled 1397 / 734.
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
# onnxruntime's session option for exact u8 x s8 products on x86 CPUs without VNNI (see make_session).
EXACT_INT8_ON_X86 = "session.x64quantprecision"
# Texts per onnxruntime call after sorting a batch by length (bench: 8 beat 4, 16 and 32 on chat text).
CHUNK = 8


def pad(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask (int64), right-padded with id 0 to the longest of ``rows``: the one
    padding of the project, for the runtime, the build's ONNX teacher and its torch training loops."""
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return ids, mask


def length_sorted_batches(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Row indices in batches of ``size``, shortest rows first: rows of similar length pad little
    together. The one home of this ordering for the runtime, evaluation and the build (sorting is
    stable, so equal lengths keep their input order)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[start : start + size] for start in range(0, len(order), size)]


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (the one home of it for the runtime and the build)."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def verify(path: Path) -> dict[str, object]:
    """Load the manifest and check every listed file against its sha256."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"no {MANIFEST} in model directory {path}")
    try:
        manifest = read_json(manifest_path)
    except ValueError as exc:
        raise ModelError(f"{manifest_path} is not valid JSON: {exc}") from exc
    files = manifest.get("files")
    if not isinstance(files, dict) or not {MODEL_FILE, TOKENIZER_FILE, LABELS_FILE} <= set(files):
        raise ModelError(f"{manifest_path} must list {MODEL_FILE}, {TOKENIZER_FILE} and {LABELS_FILE}")
    if manifest.get("whole_text") and WHOLE_TEXT_FILE not in files:
        raise ModelError(f"{manifest_path} declares whole-text heads but does not list {WHOLE_TEXT_FILE}")
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise ModelError(f"model file missing: {file}")
        if sha256(file) != expected:
            raise ModelError(f"model file corrupt (sha256 mismatch): {file}")
    return manifest


def make_session(onnx_path: Path, threads: int = 1) -> ort.InferenceSession:
    """CPU session: ``threads`` intra-op threads, no inter-op parallelism, all graph optimizations except
    those in ``DISABLED_OPTIMIZERS``."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # On x86 CPUs without VNNI, u8 x s8 MatMuls sum pairs of products in int16 and saturate when a weight
    # code passes 64: this has onnxruntime convert such weights to u8 (exact, slower) so a model's labels
    # do not depend on the machine. Shipped models use 7-bit codes and are untouched (same speed); a model
    # with 8-bit codes pays where onnxruntime converts it (2026.11.29-5 on one VNNI CPU: 460 -> 364 seq/s).
    opts.add_session_config_entry(EXACT_INT8_ON_X86, "1")
    return ort.InferenceSession(
        str(onnx_path),
        opts,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(DISABLED_OPTIMIZERS),
    )


@dataclass(frozen=True)
class _WholeText:
    """The whole-text heads' session and the tokenizer that cuts at their longer limit."""

    session: ort.InferenceSession
    tokenizer: Tokenizer
    heads: frozenset[str]
    max_tokens: int


class LabelModel:
    """A verified model directory, ready to label texts with any subset of its heads."""

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        manifest: Mapping[str, object],
        whole_text: _WholeText | None = None,
    ) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._whole = whole_text
        self._lock = threading.Lock()  # tokenizers' padding/truncation state is per instance
        self.name = str(manifest["name"])
        self.version = str(manifest["version"])
        self.max_length = int(manifest["max_length"])  # type: ignore[arg-type]
        self.heads: Mapping[str, Sequence[str]] = {h: tuple(v) for h, v in manifest["heads"].items()}  # type: ignore[union-attr]
        self.thresholds: Mapping[str, Mapping[str, object]] = dict(manifest.get("thresholds", {}))  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, threads: int = 1) -> LabelModel:
        """Verify ``path`` against its manifest and open an onnxruntime session with ``threads`` threads."""
        model_dir = Path(path)
        manifest = verify(model_dir)
        spec = manifest.get("whole_text") or {}
        try:
            session = make_session(model_dir / MODEL_FILE, threads)
            tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
            whole = None
            if spec:
                whole = _WholeText(
                    make_session(model_dir / WHOLE_TEXT_FILE, threads),
                    Tokenizer.from_file(str(model_dir / TOKENIZER_FILE)),
                    frozenset(spec["heads"]),  # type: ignore[index]
                    int(spec["max_tokens"]),  # type: ignore[index]
                )
        except Exception as exc:  # onnxruntime and tokenizers raise their own untyped errors
            raise ModelError(f"cannot open model in {model_dir}: {exc}") from exc
        tokenizer.no_padding()
        tokenizer.enable_truncation(int(manifest["max_length"]))  # type: ignore[arg-type]
        outputs = {o.name for o in session.get_outputs()}
        if whole is not None:
            whole.tokenizer.no_padding()
            whole.tokenizer.enable_truncation(whole.max_tokens)
            outputs |= {o.name for o in whole.session.get_outputs()} & whole.heads
        missing = set(manifest["heads"]) - outputs  # type: ignore[arg-type]
        if missing:
            raise ModelError(f"{model_dir} lacks outputs for heads {sorted(missing)}")
        return cls(session, tokenizer, manifest, whole)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[bool]]:
        """Token ids and attention mask padded to the longest text here, and per-text truncation flags."""
        encodings = self._encode(texts)
        ids, mask = pad([e.ids for e in encodings])
        return ids, mask, [bool(e.overflowing) for e in encodings]

    def _encode(self, texts: Sequence[str], tokenizer: Tokenizer | None = None) -> list[Encoding]:
        with self._lock:
            return (tokenizer or self._tokenizer).encode_batch(list(texts))

    def _encodings(
        self, texts: Sequence[str], encoder: bool, whole: _WholeText | None
    ) -> tuple[list[Encoding], list[Encoding]]:
        """What each family of heads reads of ``texts``: the encoder's window (if ``encoder``) and the
        whole-text heads' tokens (if ``whole``), each text tokenized once, which on a long note is most
        of the cost. For both, a text's word pieces (no special tokens; at most ``max_tokens``, flagged
        when cut) are cut and framed by each family's tokenizer exactly as its own ``encode`` would do it
        (``post_process``: truncation, then the special tokens)."""
        if whole is None:
            return self._encode(texts) if encoder else [], []
        if not encoder:
            return [], self._encode(texts, whole.tokenizer)
        with self._lock:
            pieces = whole.tokenizer.encode_batch(list(texts), add_special_tokens=False)
            return (
                [self._tokenizer.post_process(p) for p in pieces],
                [whole.tokenizer.post_process(p) for p in pieces],
            )

    def tokens_read(self, heads: Sequence[str]) -> int:
        """The most tokens these heads read of a text: what a caller may cut a text to beforehand, so a
        huge text costs encoder-only profiles no more than their window."""
        whole = self._whole
        if whole is not None and any(h in whole.heads for h in heads):
            return whole.max_tokens
        return self.max_length

    def _check_heads(self, heads: Sequence[str] | None) -> list[str]:
        wanted = list(self.heads) if heads is None else list(heads)
        unknown = [h for h in wanted if h not in self.heads]
        if unknown:
            raise ModelError(f"unknown heads {unknown}; this model has {list(self.heads)}")
        return wanted

    def probabilities(
        self, texts: Sequence[str], heads: Sequence[str] | None = None
    ) -> tuple[dict[str, np.ndarray], list[bool]]:
        """Softmax probabilities per requested head ([n_texts, n_labels]) and the truncation flags."""
        wanted = self._check_heads(heads)
        if not texts:
            return {h: np.zeros((0, len(self.heads[h])), dtype=np.float32) for h in wanted}, []
        whole = [h for h in wanted if self._whole is not None and h in self._whole.heads]
        encoder = [h for h in wanted if h not in whole]
        whole_text = self._whole if whole else None
        encodings, whole_encodings = self._encodings(texts, bool(encoder), whole_text)
        probs: dict[str, np.ndarray] = {}
        truncated = [False] * len(texts)
        if encoder:
            probs |= self._run(self._session, encoder, encodings, ("input_ids", "attention_mask"))
            truncated = [bool(e.overflowing) for e in encodings]
        if whole_text is not None:
            probs |= self._run(whole_text.session, whole, whole_encodings, ("bag_ids", "bag_mask"))
            truncated = [t or bool(e.overflowing) for t, e in zip(truncated, whole_encodings, strict=True)]
        return probs, truncated

    def _run(
        self,
        session: ort.InferenceSession,
        heads: list[str],
        encodings: Sequence[Encoding],
        inputs: tuple[str, str],
    ) -> dict[str, np.ndarray]:
        tokens = [e.ids for e in encodings]  # each .ids copies the ids out of tokenizers: once
        probs = {h: np.empty((len(tokens), len(self.heads[h])), dtype=np.float32) for h in heads}
        # Texts of similar length run together, CHUNK at a time: mixed chat lengths otherwise leave two
        # thirds of a padded batch as padding (measured: 2x seq/s at batch 32). Labels do not change:
        # the static int8 model gives each text the same output whatever its batch.
        for rows in length_sorted_batches([len(t) for t in tokens], CHUNK):
            ids, mask = pad([tokens[i] for i in rows])
            logits = session.run(heads, dict(zip(inputs, (ids, mask), strict=True)))
            for head, x in zip(heads, logits, strict=True):
                probs[head][rows] = softmax(x)
        return probs

    def decide(self, head: str, probs: np.ndarray) -> Label:
        """Label for one row of probabilities: argmax, or the head's fallback label below its threshold."""
        labels = self.heads[head]
        best = int(probs.argmax())
        rule = self.thresholds.get(head)
        if rule is not None and float(probs[best]) < float(rule["min_score"]):  # type: ignore[arg-type]
            best = labels.index(str(rule["label"]))
        return Label(labels[best], float(probs[best]))

    def predict(self, texts: Sequence[str], heads: Sequence[str] | None = None) -> list[Labels]:
        """Label each text with every requested head (all heads when ``heads`` is None).

        onnxruntime and tokenizers raise their own untyped errors; they become :class:`ModelError`
        here, the one place they enter streamnlp.
        """
        try:
            probs, truncated = self.probabilities(texts, heads)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"inference failed: {type(exc).__name__}: {exc}"[:500]) from exc
        return [
            Labels({h: self.decide(h, p[i]) for h, p in probs.items()}, truncated[i])
            for i in range(len(texts))
        ]
