"""From the trained v2 state to a shipped model directory: calibrate, export, quantize, package.

- **Calibration.** Users route on scores ("negative above 0.8 goes to a person"), so every head gets a
  temperature fitted by NLL on one half of a selection split (out-of-source where one exists) and its
  expected calibration error is reported on the other half. The temperature is folded into the head's
  weights (``W / T``, ``b / T``), so the runtime computes calibrated probabilities with no new code.
- **Out-of-scope threshold** for ``intent_general``, on the CLINC150 val split, after calibration.
- **Word table.** int8 per row (a Gather of int8 rows and of their scales, then one multiply), chosen
  over fp32 for size; see :func:`quantize_embedding_rows`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamnlp.model.build.state import PROGRESS
from streamnlp.model.runtime import softmax

log = logging.getLogger(__name__)

# head -> the selection split its temperature is fitted and its ECE reported on
CALIBRATION_SPLITS = {
    "sentiment": "sms_livejournal",
    "intent_ecommerce": "bitext_templates",
    "intent_banking": "banking77",
    "intent_general": "clinc150",
    "intent_assistant": "hwu64",
    "medical_specialty": "mtsamples",
}
ECE_BINS = 15
# SmoothQuant migration strength; on a mid-training checkpoint, sentiment fp32/int8 agreement on SMS +
# GoEmotions text was 85% without smoothing, 98.8% at 0.5 and 99.0% at 0.8.
SMOOTH_ALPHA = 0.8
# Activation ranges cut at this percentile (see static_quant.activation_ranges): fp32/int8 top-label
# agreement on 21,000 selection texts of 2026.11.29-4's weights 99.34% -> 99.56% with the last encoder
# layer's MatMuls kept fp32 as well (on 10,500: 99.30 min-max, 99.42 percentile, 99.53 both). FP32_LAYERS
# stays empty: that layer in fp32 costs 3-7% seq/s at batch 8-32 and 1.6 MB for about 0.1 point.
ACTIVATION_PERCENTILE = 99.99
FP32_LAYERS: tuple[str, ...] = ()
# Weights are rounded to 7 bits (|code| <= 64) with error compensation. Why 7: on x86 CPUs without VNNI,
# onnxruntime's u8 x s8 kernels add pairs of products in int16, which saturates once a weight code passes
# 64, so the same 8-bit model.onnx (2026.11.29-5) labelled differently by machine: fp32/int8 agreement on
# the public splits 99.26% where it was shipped, 99.56% on a VNNI machine. 7-bit codes cannot saturate, so
# every x86 CPU computes the same labels. Rounded to nearest they cost agreement (20,997 selection texts,
# VNNI machine: 8-bit 99.65%, 7-bit 99.32%); compensated rounding (GPTQ) brings 7-bit to 99.72%.
SEVEN_BIT_WEIGHTS = True
COMPENSATED_ROUNDING = True


def fp32_matmuls(onnx_path: Path, layers: Sequence[str] = FP32_LAYERS) -> list[str]:
    """The weight MatMuls of ``layers`` (names as torch exports them: ``/model/<layer>/...``)."""
    from streamnlp.model.build.static_quant import weight_matmuls

    return [n for n in weight_matmuls(onnx_path) if any(n.startswith(f"/model/{layer}/") for layer in layers)]


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    p = softmax(logits / temperature)
    return float(-np.log(p[np.arange(len(labels)), labels] + 1e-12).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising NLL (log-spaced grid, then a finer grid around the best)."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
    best = min(grid, key=lambda t: nll(logits, labels, float(t)))
    fine = np.linspace(best / 1.06, best * 1.06, 25)
    return round(float(min(fine, key=lambda t: nll(logits, labels, float(t)))), 4)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: |accuracy - confidence| per equal-width confidence bin, weighted by bin size."""
    conf = probs.max(-1)
    hit = (probs.argmax(-1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(hit[inside].mean() - conf[inside].mean())
    return float(total)


@dataclass(frozen=True)
class Calibration:
    head: str
    split: str
    out_of_source: bool
    temperature: float
    n_fit: int
    n_report: int
    ece_before: float
    ece_after: float
    accuracy: float

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def calibrate_head(
    head: str, split: str, out_of_source: bool, logits: np.ndarray, labels: Sequence[int], seed: int = 13
) -> Calibration:
    """Fit on a seeded half of the split, report ECE before and after on the other half."""
    y = np.asarray(labels)
    order = list(range(len(y)))
    random.Random(f"{seed}:{head}").shuffle(order)
    fit, rep = np.asarray(order[::2]), np.asarray(order[1::2])
    t = fit_temperature(logits[fit], y[fit])
    return Calibration(
        head=head,
        split=split,
        out_of_source=out_of_source,
        temperature=t,
        n_fit=len(fit),
        n_report=len(rep),
        ece_before=round(expected_calibration_error(softmax(logits[rep]), y[rep]), 4),
        ece_after=round(expected_calibration_error(softmax(logits[rep] / t), y[rep]), 4),
        accuracy=round(float((logits[rep].argmax(-1) == y[rep]).mean()), 4),
    )


def calibrate(
    model: object,  # MultiHeadClassifier (torch is imported lazily by the caller)
    corpus: object,  # Corpus
    encode: Callable[[Sequence[str]], list[list[int]]],
) -> dict[str, Calibration]:
    from streamnlp.model.build.finetune import head_logits

    out: dict[str, Calibration] = {}
    for head, split in CALIBRATION_SPLITS.items():
        sel = corpus.selections[split]  # type: ignore[attr-defined]
        logits = head_logits(model, encode(sel.texts), head)  # type: ignore[arg-type]
        out[head] = calibrate_head(head, split, sel.out_of_source, logits, sel.labels)
        log.info("calibration %s", out[head].to_dict())
    return out


def fold_temperatures(model: object, temperatures: dict[str, float]) -> None:
    """Divide each head's weight and bias by its temperature: logits / T with no runtime change."""
    import torch

    with torch.no_grad():
        for head, t in temperatures.items():
            layer = model.heads[head]  # type: ignore[attr-defined]
            layer.weight.div_(t)
            layer.bias.div_(t)


def quantize_embedding_rows(onnx_path: Path, out_path: Path, table: str = "model.word.weight") -> int:
    """Store the word table as int8 rows with one fp32 scale each (symmetric) and dequantize only the
    gathered rows: ``Gather(Wq, ids) * Gather(scale, ids)``. A DequantizeLinear on the whole table would
    run over all 30k rows on every call. Returns the bytes saved."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    if table not in inits:
        raise ValueError(f"{onnx_path} has no initializer {table}")
    w = numpy_helper.to_array(inits[table]).astype(np.float32)
    scale = np.abs(w).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    wq = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    gathers = [n for n in graph.node if n.op_type == "Gather" and n.input[0] == table]
    if not gathers:
        raise ValueError(f"no Gather reads {table}")
    graph.initializer.remove(inits[table])
    graph.initializer.extend(
        [
            numpy_helper.from_array(wq, f"{table}_int8"),
            numpy_helper.from_array(scale.astype(np.float32), f"{table}_row_scale"),
        ]
    )
    nodes = []
    for node in graph.node:
        if node not in gathers:
            nodes.append(node)
            continue
        ids, out = node.input[1], node.output[0]
        base = node.name or out
        nodes += [
            helper.make_node("Gather", [f"{table}_int8", ids], [f"{base}_q"], name=f"{base}_q"),
            helper.make_node("Gather", [f"{table}_row_scale", ids], [f"{base}_s"], name=f"{base}_s"),
            helper.make_node(
                "Cast", [f"{base}_q"], [f"{base}_f"], name=f"{base}_f", to=onnx.TensorProto.FLOAT
            ),
            helper.make_node("Mul", [f"{base}_f", f"{base}_s"], [out], name=f"{base}_dq"),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return int(w.nbytes - wq.nbytes - scale.nbytes)


def window_ids(ids: list[int], width: int, stride: int) -> list[list[int]]:
    """Overlapping ``width``-token windows of a tokenized text, each with its own [CLS] and [SEP]."""
    body = ids[1:-1]
    inner = width - 2
    if len(body) <= inner:
        return [ids]
    starts = list(range(0, len(body) - inner + 1, stride))
    if starts[-1] + inner < len(body):
        starts.append(len(body) - inner)
    return [[ids[0], *body[s : s + inner], ids[-1]] for s in starts]


def long_text_strategies(
    model: object,
    texts: Sequence[str],
    labels: Sequence[int],
    head: str,
    encode_whole: Callable[[Sequence[str]], list[list[int]]],
    width: int = 128,
    max_windows: int = 8,
) -> dict[str, float]:
    """Accuracy of labelling long texts from their first window vs the mean of up to ``max_windows``
    windows' probabilities (the measurement that decides how the runtime labels a long note)."""
    from streamnlp.model.build.finetune import head_logits

    first, pooled = [], []
    for ids in encode_whole(texts):
        wins = window_ids(ids, width, width - 2)[:max_windows]
        probs = softmax(head_logits(model, wins, head))  # type: ignore[arg-type]
        first.append(int(probs[0].argmax()))
        pooled.append(int(probs.mean(0).argmax()))
    y = np.asarray(labels)
    return {
        "first_window": round(float((np.asarray(first) == y).mean()), 4),
        f"mean_of_{max_windows}_windows": round(float((np.asarray(pooled) == y).mean()), 4),
    }


@dataclass
class WholeText:
    """What the long-note measurement decided: the heads read whole (maybe none) and the numbers."""

    heads: list[str]
    strategies: dict[str, float]
    package: tuple[Path, dict[str, object]] | None


def whole_text_heads(
    run: object,  # finetune.Run
    tokenizer_json: Path,
    calibration: dict[str, Calibration],
    work_dir: Path,
) -> WholeText:
    """Measure on the medical selection split how a long note is best labelled: the encoder head on its
    first window, the mean of its windows, or a whole-text head (:mod:`streamnlp.model.build.bag`)
    fitted on the training notes. When the whole-text head wins it replaces the encoder's head: it is
    calibrated like the others (``calibration`` is updated) and exported to ``work_dir``."""
    from streamnlp.model.build.bag import MAX_TOKENS, encode_whole_texts, export_bag_onnx, fit_bag_head

    corpus = run.corpus  # type: ignore[attr-defined]
    head = "medical_specialty"
    med, src = corpus.selections["mtsamples"], corpus.sources["mtsamples"]
    strategies = long_text_strategies(
        run.model,  # type: ignore[attr-defined]
        med.texts,
        med.labels,
        head,
        run.encode_long,  # type: ignore[attr-defined]
    )
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tokenizer_json)).get_vocab_size()
    bag = fit_bag_head(
        head, corpus.heads[head], encode_whole_texts(tokenizer_json, src.texts), src.labels, vocab
    )
    logits = bag.logits(encode_whole_texts(tokenizer_json, med.texts))
    strategies["whole_text_linear"] = round(float((logits.argmax(-1) == np.asarray(med.labels)).mean()), 4)
    if strategies["whole_text_linear"] <= max(v for k, v in strategies.items() if k != "whole_text_linear"):
        return WholeText([], strategies, None)
    calibration[head] = calibrate_head(head, "mtsamples", med.out_of_source, logits, med.labels)
    bag.fold_temperature(calibration[head].temperature)
    path = work_dir / "whole_text.onnx"
    export_bag_onnx([bag], path)
    return WholeText([head], strategies, (path, {"heads": [head], "max_tokens": MAX_TOKENS}))


def ship(
    run: object,  # finetune.Run, with the chosen weights loaded
    *,
    init: Path,
    data_dir: Path,
    eval_dir: Path,
    work_dir: Path,
    out_dir: Path,
    version: str,
    eval_rows: int = 0,
    weights: str = "best",
    earlier: Sequence[dict[str, object]] = (),
) -> dict[str, object]:
    """Calibrate, export fp32 and int8, package ``out_dir``, evaluate, measure and write the card."""
    import json

    import torch

    from streamnlp.model.build.export import calibration_texts, export_onnx
    from streamnlp.model.build.package import write_model_dir
    from streamnlp.model.build.select import oos_threshold
    from streamnlp.model.build.static_quant import quantize_static_int8, smooth_activations
    from streamnlp.model.metrics import OOS

    model, corpus = run.model, run.corpus  # type: ignore[attr-defined]
    encode = run.encode_eval  # type: ignore[attr-defined]
    model.eval()
    work_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, object] = {
        "weights": weights,
        "progress": json.loads((run.state_dir / PROGRESS).read_text()),  # type: ignore[attr-defined]
        "earlier": list(earlier),
    }
    soft = info["progress"]["recipe"].get("soft_labels")  # type: ignore[index]
    if soft and (Path(soft) / "teacher.json").is_file():  # the fine-tuned teacher behind the soft labels
        info["teacher"] = json.loads((Path(soft) / "teacher.json").read_text())

    calibration = calibrate(model, corpus, encode)
    fold_temperatures(model, {h: c.temperature for h, c in calibration.items()})

    clinc = corpus.selections["clinc150"]
    from streamnlp.model.build.finetune import head_logits

    labels = corpus.heads["intent_general"]
    probs = softmax(head_logits(model, encode(clinc.texts), "intent_general"))
    thresholds = {
        "intent_general": {
            "label": OOS,
            "min_score": oos_threshold(probs, [labels[i] for i in clinc.labels], labels),
        }
    }
    info["thresholds"] = thresholds

    whole_text = whole_text_heads(run, init / "tokenizer.json", calibration, work_dir)
    info["long_text"] = whole_text.strategies
    info["calibration"] = {h: c.to_dict() for h, c in calibration.items()}
    log.info("long medical notes: %s", info["long_text"])

    heads = [h for h in corpus.heads if h not in whole_text.heads]  # the encoder's outputs
    fp32 = work_dir / "student_fp32.onnx"
    export_onnx(model, heads, fp32)
    calibration_set = calibration_texts(data_dir, 13)
    smoothed = work_dir / "student_fp32_smoothed.onnx"
    info["smooth_alpha"] = SMOOTH_ALPHA
    info["smoothed_matmuls"] = smooth_activations(
        fp32, smoothed, calibration_set, init / "tokenizer.json", 128, alpha=SMOOTH_ALPHA
    )
    matmuls_int8 = work_dir / "student_int8_matmuls.onnx"
    info["activation_percentile"] = ACTIVATION_PERCENTILE
    info["fp32_layers"] = list(FP32_LAYERS)
    info["seven_bit_weights"] = SEVEN_BIT_WEIGHTS
    info["compensated_rounding"] = COMPENSATED_ROUNDING
    kept = fp32_matmuls(smoothed) if FP32_LAYERS else []
    if FP32_LAYERS and not kept:
        raise RuntimeError(f"no MatMuls of {FP32_LAYERS} in {smoothed}: export names changed?")
    quantize_static_int8(
        smoothed,
        matmuls_int8,
        calibration_set,
        init / "tokenizer.json",
        128,
        nodes_to_exclude=kept,
        percentile=ACTIVATION_PERCENTILE,
        compensate=COMPENSATED_ROUNDING,
        reduce_range=SEVEN_BIT_WEIGHTS,
    )
    int8 = work_dir / "student_int8.onnx"
    info["embedding_bytes_saved"] = quantize_embedding_rows(matmuls_int8, int8)
    common = {
        "heads": corpus.heads,
        "max_length": 128,
        "thresholds": thresholds,
        "tokenizer_path": init / "tokenizer.json",
        "version": version,
        "whole_text": whole_text.package,
    }
    extra = {
        "architecture": "squeezebert",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "calibration": {h: c.temperature for h, c in calibration.items()},
    }
    write_model_dir(
        out_dir,
        onnx_path=int8,
        name="streamnlp-squeezebert-int8",
        extra=extra | {"precision": "int8"},
        **common,
    )  # type: ignore[arg-type]
    write_model_dir(
        work_dir / "fp32",
        onnx_path=fp32,
        name="streamnlp-squeezebert-fp32",
        extra=extra | {"precision": "fp32"},
        **common,
    )  # type: ignore[arg-type]
    # int8 BERT of the teacher's shape (MiniLM, ungrouped), for the speed comparison only
    bert_dir = work_dir / "bert_int8"
    if not (bert_dir / "model.onnx").exists():
        from streamnlp.model.build.config import default_base_model
        from streamnlp.model.build.network import EncoderConfig, MultiHeadClassifier
        from streamnlp.model.build.weights import load_minilm

        bert = MultiHeadClassifier(EncoderConfig(), {h: len(v) for h, v in corpus.heads.items()})
        load_minilm(bert, default_base_model() / "model.safetensors")
        export_onnx(bert, heads, work_dir / "bert_fp32.onnx")
        quantize_static_int8(
            work_dir / "bert_fp32.onnx",
            work_dir / "bert_int8.onnx",
            calibration_texts(data_dir, 13),
            init / "tokenizer.json",
            128,
            reduce_range=SEVEN_BIT_WEIGHTS,  # the same kernels as the student's, for a like-for-like speed
        )
        write_model_dir(
            bert_dir,
            onnx_path=work_dir / "bert_int8.onnx",
            name="bert-int8-speed-reference",
            extra={},
            **common,
        )  # type: ignore[arg-type]
    del torch

    from streamnlp.model.build.report import evaluate_models, vader_baseline

    results = evaluate_models(
        {"squeezebert_fp32": work_dir / "fp32", "squeezebert_int8": out_dir}, eval_dir, limit=eval_rows
    )
    results["vader"] = vader_baseline(eval_dir, limit=eval_rows)
    (work_dir / "eval.json").write_text(json.dumps(results, indent=2))
    from streamnlp.model.build.pipeline import BENCH_BATCHES
    from streamnlp.model.throughput import compare_seq_per_s, mean_tokens, sample_texts

    texts = sample_texts(data_dir)
    rows = []
    for batch in BENCH_BATCHES:
        row = {
            "batch": batch,
            **compare_seq_per_s(
                {"squeezebert_int8": out_dir, "bert_int8": bert_dir, "squeezebert_fp32": work_dir / "fp32"},
                texts,
                batch,
            ),
        }
        row["ratio"] = round(row["squeezebert_int8"] / row["bert_int8"], 2)
        rows.append(row)
    import onnxruntime

    throughput = {
        "onnxruntime": onnxruntime.__version__,
        "n_texts": len(texts),
        "mean_tokens": round(mean_tokens(out_dir, texts), 1),
        "rows": rows,
    }
    (work_dir / "throughput.json").write_text(json.dumps(throughput, indent=2))
    info["sizes_mb"] = {
        "int8": round((out_dir / "model.onnx").stat().st_size / 1e6, 1),
        "int8_fp32_embeddings": round(matmuls_int8.stat().st_size / 1e6, 1),
        "fp32": round(fp32.stat().st_size / 1e6, 1),
    }
    info["params"] = sum(p.numel() for p in model.parameters())
    info["embedding_dim"] = model.cfg.embedding_dim if model.cfg.factorized else 0
    info["per_epoch"] = {n: src.per_epoch for n, src in corpus.sources.items()}
    info["out_of_source"] = [n for n, sel in corpus.selections.items() if sel.out_of_source]
    info["schedule"] = dataclasses.asdict(run.sched)  # type: ignore[attr-defined]
    info["out_dir"] = str(out_dir)
    # everything the card needs stays in work_dir: `streamnlp model card` re-renders it with variants
    (work_dir / "ship.json").write_text(json.dumps(info, indent=2))
    from streamnlp.model.build.card import write_release_card

    write_release_card(out_dir, eval_results=results, throughput=throughput, info=info)
    return info
