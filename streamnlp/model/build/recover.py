"""Rebuild the torch student from a shipped int8 ONNX model, so a new version continues from it.

The build directory of the version that shipped does not survive to a later session, but its
``model.onnx`` does: every weight MatMul there is an int8 matrix with per-column scales and zero points
(dequantized here; the rounding error is what int8 already cost), and the embeddings, layer norms and
heads are fp32 initializers under their torch names. The fused q/k/v MatMuls (one per group, columns
q|k|v) are split back into the three projections. Since version 2 a weight may carry a SmoothQuant
rescaling (its input multiplied by ``1/s``, its rows by ``s``: undone here) and the word table may be
stored as int8 rows with one scale each.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from streamnlp.model.build.network import EncoderConfig, MultiHeadClassifier

_LAYER = re.compile(r"/model/layers\.(\d+)/")
_SPLIT = re.compile(r"Split_output_(\d+)$")
_NAMED = re.compile(r"^model\.(layers\.\d+\.\w+)\.weights\.(\d+)_quantized$")


def _dequantize(inits: dict[str, np.ndarray], quantized: str, scale: str, zero_point: str) -> np.ndarray:
    q = inits[quantized].astype(np.float32)
    return (q - inits[zero_point].astype(np.float32)) * inits[scale].astype(np.float32)


def _weight_input(
    graph: object, inits: dict[str, np.ndarray], quantized_input: str
) -> tuple[str, np.ndarray | None]:
    """The float tensor a MatMulIntegerToFloat really multiplies, and the SmoothQuant ``1/s`` on its way
    (None when the input was not smoothed)."""
    producer = {out: n for n in graph.node for out in n.output}  # type: ignore[attr-defined]
    node = producer.get(quantized_input)
    x = node.input[0] if node is not None and node.op_type.endswith("QuantizeLinear") else quantized_input
    mul = producer.get(x)
    if mul is not None and mul.op_type == "Mul" and mul.input[1].endswith("_smooth_inv"):
        return mul.input[0], inits[mul.input[1]]
    return x, None


def student_from_onnx(onnx_path: Path, cfg: EncoderConfig) -> MultiHeadClassifier:
    """The grouped student whose int8 export is ``onnx_path`` (weights dequantized, heads as shipped)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    heads = {
        name.split(".")[2]: int(arr.shape[0])
        for name, arr in inits.items()
        if name.startswith("model.heads.") and name.endswith(".weight")
    }
    model = MultiHeadClassifier(cfg, heads)
    state: dict[str, torch.Tensor] = {}
    for name, arr in inits.items():
        if name.startswith("model.") and not name.endswith(("_quantized", "_scale", "_zero_point", "_int8")):
            state[name.removeprefix("model.")] = torch.from_numpy(arr.copy())
    if "model.word.weight_int8" in inits:  # int8 rows, one scale each
        rows = inits["model.word.weight_int8"].astype(np.float32) * inits["model.word.weight_row_scale"]
        state["word.weight"] = torch.from_numpy(rows)
    biases: dict[str, dict[int, np.ndarray]] = {}
    fused: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for node in graph.node:
        if node.op_type != "MatMulIntegerToFloat":
            continue
        w = _dequantize(inits, node.input[1], node.input[3], node.input[5])
        source, inverse = _weight_input(graph, inits, node.input[0])
        if inverse is not None:
            w = w * inverse[:, None]
        b = inits[node.input[6]]
        named = _NAMED.match(node.input[1])
        if named:
            prefix, group = named.group(1), int(named.group(2))
            state[f"{prefix}.weights.{group}"] = torch.from_numpy(w)
            biases.setdefault(prefix, {})[group] = b
            continue
        layer = _LAYER.search(node.name)
        if layer is None:
            raise ValueError(f"unexpected weight MatMul {node.name} in {onnx_path}")
        split = _SPLIT.search(source)  # the group's slice of the layer input feeds its MatMul
        if split is None:
            raise ValueError(f"cannot tell the group of {node.name} in {onnx_path}")
        fused.setdefault(int(layer.group(1)), {})[int(split.group(1))] = (w, b)
    for prefix, parts in biases.items():
        state[f"{prefix}.bias"] = torch.from_numpy(np.concatenate([parts[g] for g in sorted(parts)]))
    for layer, groups in fused.items():
        if len(groups) != cfg.qkv_groups:
            raise ValueError(f"layer {layer}: {len(groups)} fused q/k/v MatMuls, expected {cfg.qkv_groups}")
        for i, proj in enumerate(("query", "key", "value")):
            bias = []
            for g in sorted(groups):
                w, b = groups[g]
                width = w.shape[1] // 3
                state[f"layers.{layer}.{proj}.weights.{g}"] = torch.from_numpy(
                    w[:, i * width : (i + 1) * width].copy()
                )
                bias.append(b[i * width : (i + 1) * width])
            state[f"layers.{layer}.{proj}.bias"] = torch.from_numpy(np.concatenate(bias))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{onnx_path} does not match the student: missing {missing}, unexpected {unexpected}"
        )
    return model


def add_heads(model: MultiHeadClassifier, heads: dict[str, int], seed: int = 13) -> MultiHeadClassifier:
    """``model`` with a freshly initialised linear head for every name in ``heads`` it lacks (a head whose
    size changed is replaced too)."""
    gen = torch.Generator().manual_seed(seed)
    for name, n in heads.items():
        head = model.heads[name] if name in model.heads else None
        if head is not None and head.out_features == n:
            continue
        new = torch.nn.Linear(model.cfg.hidden, n)
        with torch.no_grad():
            new.weight.normal_(0.0, 0.02, generator=gen)
            new.bias.zero_()
        model.heads[name] = new
    return model


def factorize_embeddings(model: MultiHeadClassifier, dim: int) -> MultiHeadClassifier:
    """A copy of ``model`` whose word table is factorized to rank ``dim`` by truncated SVD (the best
    rank-``dim`` approximation of the original table, which distillation then refines)."""
    import dataclasses

    cfg = dataclasses.replace(model.cfg, embedding_dim=dim)
    heads = {name: h.out_features for name, h in model.heads.items()}
    out = MultiHeadClassifier(cfg, heads)
    state = {k: v for k, v in model.state_dict().items() if k != "word.weight"}
    out.load_state_dict(state, strict=False)
    u, s, vt = torch.linalg.svd(model.word.weight.detach(), full_matrices=False)
    with torch.no_grad():
        out.word.weight.copy_(u[:, :dim] * s[:dim])
        out.word_proj.weight.copy_(vt[:dim].T)  # type: ignore[union-attr]
    return out
