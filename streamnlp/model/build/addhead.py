"""``streamnlp model add-head``: a new classifier head trained on frozen encoder features of a shipped model.

Features come from the shipped ONNX itself (the pooled tensor that feeds the existing heads), so the new
head sees exactly what the runtime computes, int8 encoder included. Training is a full-batch softmax
regression in numpy over the cached features: seconds to minutes on CPU. Needs numpy, onnx, onnxruntime,
tokenizers and tqdm (no torch).
"""

from __future__ import annotations

import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from tqdm import tqdm

from streamnlp.model.build.package import write_model_dir
from streamnlp.model.evaluate import read_labelled_csv
from streamnlp.model.manifest import CARD_FILE, MODEL_FILE, TOKENIZER_FILE, WHOLE_TEXT_FILE, sha256
from streamnlp.model.runtime import DISABLED_OPTIMIZERS, LabelModel, ModelError, verify

POOLED_OUTPUT = "pooled"


@dataclass(frozen=True)
class HeadReport:
    name: str
    labels: list[str]
    n_train: int
    n_holdout: int
    holdout_accuracy: float
    version: str


# Ops a (possibly int8-quantized) linear head is made of; walking back through them from a head's
# output along the activation input reaches the pooled encoder output.
_HEAD_OPS = {"Gemm", "MatMul", "Add", "Mul", "Cast", "MatMulInteger", "DynamicQuantizeLinear"}


def encoder_head(graph: onnx.GraphProto, heads: object) -> str:
    """One of ``heads`` that the encoder graph outputs (whole-text heads live in another graph)."""
    outputs = {o.name for o in graph.output}
    for head in heads:  # type: ignore[attr-defined]
        if head in outputs:
            return str(head)
    raise ModelError("model.onnx outputs none of the model's heads")


def pooled_tensor(graph: onnx.GraphProto, head: str) -> str:
    """Name of the tensor feeding an existing head (the masked-mean pooled encoder output)."""
    producers = {out: node for node in graph.node for out in node.output}
    params = {i.name for i in graph.initializer}
    tensor, steps = head, 0
    while tensor in producers and producers[tensor].op_type in _HEAD_OPS and steps < 10:
        tensor = next(i for i in producers[tensor].input if i not in params)
        steps += 1
    if tensor == head or tensor not in producers:
        raise ModelError(f"cannot find the pooled encoder output feeding head {head!r} in the ONNX graph")
    return tensor


def _with_pooled_output(model: onnx.ModelProto, pooled: str) -> onnx.ModelProto:
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(
        helper.make_tensor_value_info(pooled, onnx.TensorProto.FLOAT, ["batch", "hidden"])
    )
    return probe


def extract_features(
    model_dir: Path, texts: list[str], batch_size: int = 64, *, threads: int = 1
) -> np.ndarray:
    """Pooled encoder features ([n, hidden]) for ``texts`` from the shipped model."""
    import onnxruntime as ort

    runtime = LabelModel.load(model_dir)
    model = onnx.load(str(model_dir / MODEL_FILE))
    pooled = pooled_tensor(model.graph, encoder_head(model.graph, runtime.heads))
    probe = _with_pooled_output(model, pooled)
    # The runtime's session settings (see runtime.make_session), so the features are the ones it computes.
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(
        probe.SerializeToString(),
        opts,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(DISABLED_OPTIMIZERS),
    )
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    feats: np.ndarray | None = None
    for start in tqdm(range(0, len(order), batch_size), desc="features", unit="batch"):
        rows = order[start : start + batch_size]
        ids, mask, _ = runtime.encode([texts[i] for i in rows])
        (out,) = session.run([pooled], {"input_ids": ids, "attention_mask": mask})
        if feats is None:
            feats = np.zeros((len(texts), out.shape[1]), dtype=np.float32)
        feats[rows] = out
    if feats is None:
        raise ModelError("no texts to extract features from")
    return feats


def train_head(
    feats: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    epochs: int = 300,
    lr: float = 0.01,
    weight_decay: float = 0.01,
    label_smoothing: float = 0.05,
    sample_weight: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch softmax regression on standardised features, trained with AdamW (numpy only).

    Cross-entropy with label smoothing, optionally weighted per row (``sample_weight``, e.g. to balance
    classes); decoupled weight decay on weight and bias. Deterministic for a given ``seed``. The
    standardisation is folded into the result, so ``feats @ weight + bias`` are the logits on raw
    features. Returns (weight [hidden, classes], bias [classes]) as float32.
    """
    x = np.asarray(feats, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or len(x) == 0 or len(x) != len(y):
        raise ModelError(f"need a non-empty [n, hidden] feature matrix and n labels: {x.shape}, {y.shape}")
    if n_classes < 2 or y.min() < 0 or y.max() >= n_classes:
        raise ModelError(f"labels must lie in 0..{n_classes - 1} with at least two classes")
    n, hidden = x.shape
    mean = x.mean(0)
    std = x.std(0)
    std = np.where(std > 1e-6, std, 1.0)  # a constant feature must not turn into a huge folded weight
    xn = (x - mean) / std
    target = np.full((n, n_classes), label_smoothing / n_classes)
    target[np.arange(n), y] += 1.0 - label_smoothing
    rows = np.full(n, 1.0 / n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    if rows.shape != (n,) or (rows < 0).any() or rows.sum() <= 0:
        raise ModelError("sample_weight must be n non-negative numbers, not all zero")
    rows = rows / rows.sum()

    bound = 1.0 / np.sqrt(hidden)  # the usual uniform init of a linear layer
    rng = np.random.default_rng(seed)
    params = [rng.uniform(-bound, bound, (hidden, n_classes)), rng.uniform(-bound, bound, n_classes)]
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in tqdm(range(1, epochs + 1), desc="head", unit="epoch", mininterval=5):
        logits = xn @ params[0] + params[1]
        logits -= logits.max(1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(1, keepdims=True)
        grad_logits = (prob - target) * rows[:, None]
        grads = [xn.T @ grad_logits, grad_logits.sum(0)]
        for p, g, m, v in zip(params, grads, first, second, strict=True):
            p *= 1.0 - lr * weight_decay
            m *= beta1
            m += (1.0 - beta1) * g
            v *= beta2
            v += (1.0 - beta2) * g * g
            m_hat = m / (1.0 - beta1**step)
            v_hat = v / (1.0 - beta2**step)
            p -= lr * m_hat / (np.sqrt(v_hat) + eps)
    w, b = params
    weight = w / std[:, None]  # fold the standardisation into the head
    bias = b - (mean / std) @ w
    return weight.astype(np.float32), bias.astype(np.float32)


def next_version(version: str) -> str:
    """``2026.11.23-1`` -> ``2026.11.23-2``; anything else gets ``-1`` appended."""
    match = re.fullmatch(r"(.*)-(\d+)", version)
    return f"{match.group(1)}-{int(match.group(2)) + 1}" if match else f"{version}-1"


def add_head(
    model_dir: Path, name: str, data: Path, out_dir: Path, *, holdout: float = 0.1, seed: int = 0
) -> HeadReport:
    """Train head ``name`` on ``data`` (text,label CSV) and write a new model version to ``out_dir``."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ModelError(f"head name {name!r} must be an identifier (letters, digits, underscore)")
    runtime = LabelModel.load(model_dir)
    if name in runtime.heads:
        raise ModelError(f"head {name!r} already exists in {model_dir}")
    graph = onnx.load(str(model_dir / MODEL_FILE), load_external_data=False).graph
    taken = {t for node in graph.node for t in node.output} | {i.name for i in graph.input}
    taken |= {i.name for i in graph.initializer}
    if {name, f"{name}.weight", f"{name}.bias"} & taken:
        raise ModelError(f"head name {name!r} clashes with a tensor already in {model_dir / MODEL_FILE}")
    texts, gold = read_labelled_csv(data)
    labels = sorted(set(gold))
    if len(labels) < 2:
        raise ModelError(f"{data} needs at least two distinct labels")
    y = np.array([labels.index(g) for g in gold], dtype=np.int64)
    feats = extract_features(model_dir, texts)
    idx = list(range(len(texts)))
    random.Random(seed).shuffle(idx)
    n_hold = int(len(idx) * holdout) if len(idx) >= 50 else 0
    hold, train = np.array(idx[:n_hold], dtype=np.int64), np.array(idx[n_hold:], dtype=np.int64)
    weight, bias = train_head(feats[train], y[train], len(labels), seed=seed)
    acc = float(((feats[hold] @ weight + bias).argmax(1) == y[hold]).mean()) if n_hold else float("nan")
    report = HeadReport(name, labels, len(train), n_hold, acc, next_version(runtime.version))
    _write(model_dir, out_dir, runtime, report, weight, bias, data)
    return report


def _write(
    model_dir: Path,
    out_dir: Path,
    runtime: LabelModel,
    report: HeadReport,
    weight: np.ndarray,
    bias: np.ndarray,
    data: Path,
) -> None:
    name, labels, version = report.name, report.labels, report.version
    model = onnx.load(str(model_dir / MODEL_FILE))
    pooled = pooled_tensor(model.graph, encoder_head(model.graph, runtime.heads))
    model.graph.initializer.extend(
        [numpy_helper.from_array(weight, f"{name}.weight"), numpy_helper.from_array(bias, f"{name}.bias")]
    )
    model.graph.node.append(
        helper.make_node("Gemm", [pooled, f"{name}.weight", f"{name}.bias"], [name], name=f"head_{name}")
    )
    model.graph.output.append(
        helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", len(labels)])
    )
    onnx.checker.check_model(model)
    manifest = verify(model_dir)
    heads = {h: list(v) for h, v in runtime.heads.items()} | {name: labels}
    added = dict(manifest.get("added_heads", {}))  # type: ignore[arg-type]
    added[name] = {
        "data_sha256": sha256(data),
        "train_rows": report.n_train,
        "holdout_rows": report.n_holdout,
        "holdout_accuracy": round(report.holdout_accuracy, 4),
    }
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / MODEL_FILE
        onnx.save(model, str(onnx_path))
        tok = Path(tmp) / TOKENIZER_FILE
        shutil.copyfile(model_dir / TOKENIZER_FILE, tok)
        card = model_dir / CARD_FILE
        card_text = card.read_text(encoding="utf-8") if card.exists() else ""
        extra = {
            k: v
            for k, v in manifest.items()
            if k
            not in {"name", "version", "max_length", "heads", "thresholds", "files", "created", "whole_text"}
        }
        whole = manifest.get("whole_text")
        extra["added_heads"] = added
        write_model_dir(
            out_dir,
            onnx_path=onnx_path,
            tokenizer_path=tok,
            heads=heads,
            name=runtime.name,
            version=version,
            max_length=runtime.max_length,
            thresholds=dict(runtime.thresholds),
            extra=extra,
            whole_text=(model_dir / WHOLE_TEXT_FILE, whole) if whole else None,  # type: ignore[arg-type]
        )
    (out_dir / CARD_FILE).write_text(
        card_text
        + f"\n\n## Added head `{name}` (version {version})\n\nTrained by `streamnlp model add-head` on "
        f"`{data.name}` (sha256 {sha256(data)[:12]}) on frozen encoder "
        f"features: {report.n_train} training rows, "
        f"held-out accuracy {report.holdout_accuracy:.4f} on "
        f"{report.n_holdout} rows. Labels: {', '.join(labels)}.\n",
        encoding="utf-8",
    )
