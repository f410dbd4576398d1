"""Static int8 quantization: activation scales fixed from calibration, so outputs are batch-invariant.

``quantize_dynamic`` computes each activation's scale over the whole batch tensor (padding included), so a
text's scores depend on which texts share its batch. Here every scale and zero point is a constant taken
from calibration on training texts; each row is then quantized on its own and gives the same result in
any batch.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from tokenizers import Tokenizer

log = logging.getLogger(__name__)


class TextCalibrationReader(CalibrationDataReader):
    """Feeds calibration texts one at a time (batch 1, unpadded), as the runtime tokenizes them."""

    def __init__(self, texts: Sequence[str], tokenizer_json: Path, max_length: int) -> None:
        tok = Tokenizer.from_file(str(tokenizer_json))
        tok.no_padding()
        tok.enable_truncation(max_length)
        self._ids = [e.ids for e in tok.encode_batch(list(texts))]
        self._it: Iterator[list[int]] = iter(self._ids)

    def get_next(self) -> dict[str, np.ndarray] | None:
        ids = next(self._it, None)
        if ids is None:
            return None
        arr = np.asarray([ids], dtype=np.int64)
        return {"input_ids": arr, "attention_mask": np.ones_like(arr)}

    def rewind(self) -> None:
        self._it = iter(self._ids)


def weight_matmuls(model_path: Path) -> list[str]:
    """Names of the MatMul nodes whose second input is a constant weight (not activation x activation)."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def fold_matmul_bias(model: onnx.ModelProto) -> int:
    """Rewrite ``DQ(x_q) @ DQ(W_q) + bias`` into one com.microsoft ``MatMulIntegerToFloat`` with the bias
    fused (onnxruntime's own QDQ fusion leaves the Add, one extra node per MatMul); returns the count."""
    graph = model.graph
    consts = {i.name for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    users: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    dropped: set[int] = set()
    fused: dict[int, onnx.NodeProto] = {}
    for mm in graph.node:
        if mm.op_type != "MatMul":
            continue
        dqx, dqw = producer.get(mm.input[0]), producer.get(mm.input[1])
        nexts = users.get(mm.output[0], [])
        if dqx is None or dqw is None or len(nexts) != 1:
            continue
        add = nexts[0]
        bias = [i for i in add.input if i != mm.output[0]]
        w_axis = next((a.i for a in dqw.attribute if a.name == "axis"), 1)  # per-channel must be per column
        if not (
            dqx.op_type == dqw.op_type == "DequantizeLinear"
            and len(dqx.input) == len(dqw.input) == 3
            and w_axis in (1, -1)
            and add.op_type == "Add"
            and len(bias) == 1
            and bias[0] in consts
            and dqw.input[0] in consts
            and len(users[dqx.output[0]]) == len(users[dqw.output[0]]) == 1
        ):
            continue
        inputs = [dqx.input[0], dqw.input[0], dqx.input[1], dqw.input[1], dqx.input[2], dqw.input[2], bias[0]]
        fused[id(add)] = onnx.helper.make_node(
            "MatMulIntegerToFloat", inputs, [add.output[0]], name=f"{mm.name}_int8", domain="com.microsoft"
        )
        dropped |= {id(dqx), id(dqw), id(mm)}
    nodes = [fused.get(id(n), n) for n in graph.node if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(nodes)
    if fused and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    return len(fused)


def quantize_static_int8(
    fp32_onnx: Path,
    out_onnx: Path,
    calibration_texts: Sequence[str],
    tokenizer_json: Path,
    max_length: int = 128,
    *,
    nodes_to_exclude: Sequence[str] = (),
    percentile: float | None = None,
    compensate: bool = False,
    reduce_range: bool = False,
) -> None:
    """Shape-infer and pre-optimise ``fp32_onnx``, calibrate (MinMax) on ``calibration_texts`` (training
    data only) and write a static int8 model to ``out_onnx``.

    Only weight MatMuls are quantized (per-channel QInt8 weights, QUInt8 activations with fixed scales);
    their outputs stay float and each becomes QuantizeLinear + MatMulIntegerToFloat with the bias fused.
    ``nodes_to_exclude`` keeps named MatMuls in fp32. ``percentile`` (e.g. 99.99) sets each activation's
    range from that percentile of its calibration values (see :func:`activation_ranges`) instead of
    their min and max. ``compensate`` rounds each weight MatMul's int8 weights with error compensation
    (see :func:`compensated_weights`) instead of to nearest, on the same per-channel scales.
    """
    if not calibration_texts:
        raise ValueError("static quantization needs calibration texts")
    out_onnx.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_onnx.parent) as tmp:
        prepped = Path(tmp) / "prep.onnx"
        quant_pre_process(str(fp32_onnx), str(prepped), auto_merge=True)
        excluded = set(nodes_to_exclude)
        overrides: dict[str, object] = {}
        if percentile is not None:
            ranges = activation_ranges(prepped, calibration_texts, tokenizer_json, max_length, percentile)
            overrides["TensorQuantOverrides"] = {
                name: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for name, (lo, hi) in ranges.items()
            }
        quantized = Path(tmp) / "qdq.onnx"
        quantize_static(
            str(prepped),
            str(quantized),
            TextCalibrationReader(calibration_texts, tokenizer_json, max_length),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=[n for n in weight_matmuls(prepped) if n not in excluded],
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={
                "MatMulConstBOnly": True,
                "OpTypesToExcludeOutputQuantization": ["MatMul"],
                **overrides,
            },
        )
        model = onnx.load(str(quantized))
        if compensate:
            nodes = [n for n in weight_matmuls(prepped) if n not in excluded]
            compensated_weights(
                prepped,
                model,
                nodes,
                calibration_texts,
                tokenizer_json,
                max_length,
                qmax=64 if reduce_range else 127,
            )
        folded = fold_matmul_bias(model)
        onnx.save(model, str(out_onnx))
    log.info(
        "static int8: %d calibration texts, ranges %s, %d MatMuls excluded, %d biases fused -> %s",
        len(calibration_texts),
        ("min-max" if percentile is None else f"percentile {percentile}")
        + (", weights rounded with error compensation" if compensate else ""),
        len(excluded),
        folded,
        out_onnx,
    )


def _probe(model: onnx.ModelProto, tensors: Sequence[str]) -> ort.InferenceSession:
    """A session on a copy of ``model`` that also outputs ``tensors`` (unoptimised, so names survive)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    for name in tensors:
        if name not in known:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def activation_ranges(
    onnx_path: Path,
    calibration_texts: Sequence[str],
    tokenizer_json: Path,
    max_length: int,
    percentile: float,
) -> dict[str, tuple[float, float]]:
    """(low, high) range of each weight MatMul's input over the calibration texts, cut at ``percentile``
    at both ends (always containing 0).

    Min and max are set by a handful of tokens; after SmoothQuant they still stretch one uint8 scale
    over values most tokens never reach. Measured on 10,500 selection texts (fp32 vs int8 top-label
    agreement): min-max 99.30%, percentile 99.99 99.42%, 99.999 99.28%, 99.9 98.98%."""
    model = onnx.load(str(onnx_path))
    names = set(weight_matmuls(onnx_path))
    inputs = sorted({n.input[0] for n in model.graph.node if n.name in names})
    session = _probe(model, inputs)
    tail = 1.0 - percentile / 100.0
    high: dict[str, np.ndarray] = {}
    low: dict[str, np.ndarray] = {}
    keep: dict[str, int] = {}
    count = dict.fromkeys(inputs, 0)
    reader = TextCalibrationReader(calibration_texts, tokenizer_json, max_length)
    while (feed := reader.get_next()) is not None:
        for name, value in zip(inputs, session.run(inputs, feed), strict=True):
            # a running pool of the tensor's most extreme values, as many as the cut below can need:
            # the tail of every value the calibration texts can give it (each text <= max_length tokens)
            k = keep.setdefault(name, int(tail * len(calibration_texts) * max_length * value.shape[-1]) + 1)
            v = value.ravel()
            count[name] += v.size
            hi = np.concatenate([high.get(name, v[:0]), v])
            lo = np.concatenate([low.get(name, v[:0]), v])
            high[name] = np.partition(hi, hi.size - k)[-k:] if hi.size > k else hi
            low[name] = np.partition(lo, k - 1)[:k] if lo.size > k else lo
    ranges = {}
    for name in inputs:
        k = min(max(1, round(count[name] * tail)), high[name].size)
        ranges[name] = (
            min(0.0, float(np.sort(low[name])[k - 1])),
            max(0.0, float(np.sort(high[name])[-k])),
        )
    return ranges


def input_hessians(
    onnx_path: Path,
    nodes: Sequence[str],
    calibration_texts: Sequence[str],
    tokenizer_json: Path,
    max_length: int,
) -> dict[str, np.ndarray]:
    """``X^T X`` over every calibration token of each named MatMul's input ``X`` (float64): the curvature
    of that MatMul's output error in its weights."""
    model = onnx.load(str(onnx_path))
    wanted = set(nodes)
    inputs = sorted({n.input[0] for n in model.graph.node if n.name in wanted})
    session = _probe(model, inputs)
    sums: dict[str, np.ndarray] = {}
    reader = TextCalibrationReader(calibration_texts, tokenizer_json, max_length)
    while (feed := reader.get_next()) is not None:
        for name, value in zip(inputs, session.run(inputs, feed), strict=True):
            x = value.reshape(-1, value.shape[-1]).astype(np.float64)
            sums[name] = sums[name] + x.T @ x if name in sums else x.T @ x
    return sums


def compensated_rounding(
    w: np.ndarray, scale: np.ndarray, hessian: np.ndarray, qmax: int = 127, damp: float = 0.01
) -> np.ndarray:
    """int8 codes for ``w`` ([in, out], symmetric per-output-channel ``scale``) that keep ``X @ W`` close
    on the calibration inputs, not each weight close on its own (the GPTQ procedure).

    Input rows are rounded one at a time, largest ``X^T X`` diagonal first; each row's rounding error is
    pushed onto the rows not yet rounded in proportion to the inverse Hessian, so errors cancel in the
    product instead of adding up. Scales are unchanged, so the codes drop into the existing graph."""
    rows = w.shape[0]
    h = hessian.astype(np.float64).copy()
    work = w.astype(np.float64).copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    work[dead] = 0.0
    order = np.argsort(-np.diag(h))
    h = h[np.ix_(order, order)]
    work = work[order]
    h[np.diag_indices(rows)] += damp * np.mean(np.diag(h))
    # upper Cholesky factor of H^-1: row i holds how the later rows absorb row i's error
    u = np.linalg.cholesky(np.linalg.inv(h)).T
    s = scale.astype(np.float64)
    codes = np.empty_like(work)
    for i in range(rows):
        q = np.clip(np.round(work[i] / s), -qmax, qmax)
        codes[i] = q
        err = (work[i] - q * s) / u[i, i]
        work[i + 1 :] -= np.outer(u[i, i + 1 :], err)
    out = np.empty_like(codes)
    out[order] = codes
    return out.astype(np.int8)


def compensated_weights(
    prepped: Path,
    quantized: onnx.ModelProto,
    nodes: Sequence[str],
    calibration_texts: Sequence[str],
    tokenizer_json: Path,
    max_length: int,
    qmax: int = 127,
) -> int:
    """Replace the round-to-nearest int8 weights of ``nodes`` in ``quantized`` (QDQ, as ``quantize_static``
    writes it from ``prepped``) by :func:`compensated_rounding` codes; returns the count replaced."""
    from onnx import numpy_helper

    source = onnx.load(str(prepped))
    fp32 = {i.name: i for i in source.graph.initializer}
    by_name = {n.name: n for n in source.graph.node}
    inits = {i.name: i for i in quantized.graph.initializer}
    producer = {o: n for n in quantized.graph.node for o in n.output}
    hessians = input_hessians(prepped, nodes, calibration_texts, tokenizer_json, max_length)
    done = 0
    for node in quantized.graph.node:
        if node.name not in by_name or node.op_type != "MatMul" or node.name not in set(nodes):
            continue
        dq = producer.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
            continue
        codes = numpy_helper.to_array(inits[dq.input[0]])
        scale = numpy_helper.to_array(inits[dq.input[1]])
        zero = numpy_helper.to_array(inits[dq.input[2]]) if len(dq.input) > 2 else np.zeros(1)
        if codes.dtype != np.int8 or np.any(zero != 0) or scale.shape != (codes.shape[1],):
            raise ValueError(f"{node.name}: expected symmetric per-output-channel int8 weights")
        original = by_name[node.name]
        w = numpy_helper.to_array(fp32[original.input[1]]).astype(np.float32)
        new = compensated_rounding(w, scale, hessians[original.input[0]], qmax=qmax)
        inits[dq.input[0]].CopyFrom(numpy_helper.from_array(new, dq.input[0]))
        done += 1
    if done != len(set(nodes)):
        raise RuntimeError(f"error compensation reached {done} of {len(set(nodes))} weight MatMuls")
    return done


def smooth_activations(
    fp32_onnx: Path,
    out_onnx: Path,
    calibration_texts: Sequence[str],
    tokenizer_json: Path,
    max_length: int = 128,
    alpha: float = 0.5,
) -> int:
    """Move activation outliers into the weights before int8 (the SmoothQuant rescaling).

    Fine-tuning grows a few large input channels in some MatMuls; one activation scale per tensor then
    leaves the other channels a handful of int8 steps (measured: 10x the relative error of their
    neighbours, 85% fp32/int8 label agreement). For each weight MatMul ``X @ W`` this inserts
    ``X * (1/s)`` and stores ``diag(s) @ W``, with ``s_j = max|X_j|^alpha / max|W_j|^(1-alpha)`` from the
    calibration texts, so the product is unchanged and both factors quantize evenly. Returns the number
    of MatMuls rescaled."""
    from onnx import helper, numpy_helper

    model = onnx.load(str(fp32_onnx))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    targets = [
        n for n in graph.node if n.op_type == "MatMul" and n.input[1] in inits and uses[n.input[1]] == 1
    ]
    inputs = sorted({n.input[0] for n in targets})
    sess = _probe(model, inputs)
    reader = TextCalibrationReader(calibration_texts, tokenizer_json, max_length)
    absmax: dict[str, np.ndarray] = {}
    while (feed := reader.get_next()) is not None:
        for name, value in zip(inputs, sess.run(inputs, feed), strict=True):
            m = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            absmax[name] = m if name not in absmax else np.maximum(absmax[name], m)
    for node in targets:
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        x_max = np.maximum(absmax[node.input[0]], 1e-5)
        w_max = np.maximum(np.abs(w).max(axis=1), 1e-5)
        s = (x_max**alpha / w_max ** (1 - alpha)).astype(np.float32)
        s = np.clip(s, 1e-2, 1e2)
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(w * s[:, None], node.input[1]))
        inv = f"{node.name}_smooth_inv"
        graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), inv))
        scaled = f"{node.input[0]}_smoothed_for_{node.name}"
        mul = helper.make_node("Mul", [node.input[0], inv], [scaled], name=f"{node.name}_smooth")
        graph.node.insert(list(graph.node).index(node), mul)
        node.input[0] = scaled
    onnx.save(model, str(out_onnx))
    log.info("smoothed %d MatMul inputs (alpha %.2f) -> %s", len(targets), alpha, out_onnx)
    return len(targets)
