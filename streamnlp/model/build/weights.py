"""Weight porting: MiniLM (HF BERT safetensors) into the teacher, and teacher into a grouped student.

The student starts from the teacher's block-diagonal weights. Because FFN neurons (and attention heads)
can be permuted freely, each is first assigned to the group that keeps most of its weight mass, which
loses less of the teacher than cutting the blocks in their original order.
"""

from __future__ import annotations

from pathlib import Path

import torch

from streamnlp.model.build.network import EncoderConfig, GroupedLinear, MultiHeadClassifier

_LAYER_MAP = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
}
_NORM_MAP = {"attn_norm": "attention.output.LayerNorm", "out_norm": "output.LayerNorm"}


def load_minilm(model: MultiHeadClassifier, safetensors_path: Path) -> None:
    """Copy HF BertModel weights (all groups must be 1) into ``model``; heads stay randomly initialised."""
    from safetensors.torch import load_file

    sd = {k.removeprefix("bert."): v for k, v in load_file(str(safetensors_path)).items()}
    with torch.no_grad():
        model.word.weight.copy_(sd["embeddings.word_embeddings.weight"])
        model.position.weight.copy_(sd["embeddings.position_embeddings.weight"])
        model.token_type.copy_(sd["embeddings.token_type_embeddings.weight"][0])
        model.embed_norm.weight.copy_(sd["embeddings.LayerNorm.weight"])
        model.embed_norm.bias.copy_(sd["embeddings.LayerNorm.bias"])
        for i, layer in enumerate(model.layers):
            prefix = f"encoder.layer.{i}."
            for ours, theirs in _LAYER_MAP.items():
                lin: GroupedLinear = getattr(layer, ours)
                if lin.groups != 1:
                    raise ValueError("MiniLM weights load only into an ungrouped (teacher) encoder")
                lin.weights[0].copy_(sd[prefix + theirs + ".weight"].T)
                lin.bias.copy_(sd[prefix + theirs + ".bias"])
            for ours, theirs in _NORM_MAP.items():
                norm = getattr(layer, ours)
                norm.weight.copy_(sd[prefix + theirs + ".weight"])
                norm.bias.copy_(sd[prefix + theirs + ".bias"])


def _assign(scores: torch.Tensor) -> torch.Tensor:
    """Balanced greedy assignment of units (rows) to groups (columns), best-scoring pairs first."""
    units, groups = scores.shape
    capacity = units // groups
    filled = [0] * groups
    owner = torch.full((units,), -1, dtype=torch.long)
    for flat in torch.argsort(scores.flatten(), descending=True).tolist():
        unit, group = divmod(flat, groups)
        if owner[unit] < 0 and filled[group] < capacity:
            owner[unit] = group
            filled[group] += 1
    return owner


def _order(owner: torch.Tensor, groups: int) -> torch.Tensor:
    """Permutation that lists group 0's units first, then group 1's, and so on."""
    return torch.cat([torch.nonzero(owner == g).flatten() for g in range(groups)])


def _block(dense: torch.Tensor, groups: int) -> list[torch.Tensor]:
    """Diagonal blocks of a dense [in, out] matrix."""
    n_in, n_out = dense.shape[0] // groups, dense.shape[1] // groups
    return [dense[g * n_in : (g + 1) * n_in, g * n_out : (g + 1) * n_out].clone() for g in range(groups)]


def _set(lin: GroupedLinear, dense: torch.Tensor, bias: torch.Tensor) -> None:
    for w, block in zip(lin.weights, _block(dense, lin.groups), strict=True):
        w.copy_(block)
    lin.bias.copy_(bias)


def _dense(lin: GroupedLinear) -> tuple[torch.Tensor, torch.Tensor]:
    return lin.weights[0].detach().clone(), lin.bias.detach().clone()


def _group_mass(w: torch.Tensor, groups: int, axis: int) -> torch.Tensor:
    """Squared weight mass that each unit (other axis) receives from / sends to each group along ``axis``."""
    chunks = w.chunk(groups, dim=axis)
    return torch.stack([c.pow(2).sum(dim=axis) for c in chunks], dim=-1)


def grouped_from_teacher(teacher: MultiHeadClassifier, cfg: EncoderConfig) -> MultiHeadClassifier:
    """Build a grouped student whose weights are the teacher's (permuted) block diagonals."""
    heads = {name: h.out_features for name, h in teacher.heads.items()}
    student = MultiHeadClassifier(cfg, heads)
    state = {k: v for k, v in teacher.state_dict().items() if ".weights." not in k and not k.endswith("bias")}
    student.load_state_dict(state, strict=False)
    with torch.no_grad():
        for name, head in teacher.heads.items():
            student.heads[name].load_state_dict(head.state_dict())
        for t, s in zip(teacher.layers, student.layers, strict=True):
            _port_attention(t, s, cfg)
            _port_ffn(t, s, cfg)
            for norm in ("attn_norm", "out_norm"):
                getattr(s, norm).load_state_dict(getattr(t, norm).state_dict())
        student.embed_norm.load_state_dict(teacher.embed_norm.state_dict())
    return student


def _port_attention(t: torch.nn.Module, s: torch.nn.Module, cfg: EncoderConfig) -> None:
    g, head_dim = cfg.qkv_groups, cfg.hidden // cfg.heads
    (wq, bq), (wk, bk), (wv, bv) = (_dense(getattr(t, n)) for n in ("query", "key", "value"))
    wo, bo = _dense(t.attn_out)
    mass = sum(_group_mass(w, g, 0) for w in (wq, wk, wv))  # [hidden(out), g]
    owner = _assign(mass.view(cfg.heads, head_dim, g).sum(1))
    head_order = _order(owner, g)
    cols = (head_order[:, None] * head_dim + torch.arange(head_dim)).flatten()
    for name, w, b in (("query", wq, bq), ("key", wk, bk), ("value", wv, bv)):
        _set(getattr(s, name), w[:, cols], b[cols])
    _set(s.attn_out, wo[cols, :], bo)


def _port_ffn(t: torch.nn.Module, s: torch.nn.Module, cfg: EncoderConfig) -> None:
    if cfg.intermediate_groups != cfg.output_groups:
        raise ValueError("neuron assignment needs intermediate_groups == output_groups")
    g = cfg.intermediate_groups
    w1, b1 = _dense(t.intermediate)
    w2, b2 = _dense(t.output)
    mass = _group_mass(w1, g, 0) / w1.pow(2).sum() + _group_mass(w2, g, 1) / w2.pow(2).sum()
    order = _order(_assign(mass), g)
    _set(s.intermediate, w1[:, order], b1[order])
    _set(s.output, w2[order, :], b2)
