"""A BERT/SqueezeBERT encoder with task heads, written so that its ONNX export quantizes well.

Grouped position-wise convolutions (SqueezeBERT's kernel-size-1 ``Conv1d`` with ``groups > 1``) are
written as one MatMul per group: onnxruntime's ``quantize_dynamic`` turns those into fast int8 MatMuls,
whereas a grouped Conv becomes ConvInteger and runs several times slower than fp32.
With every group count at 1 the same module is exactly BERT (the teacher).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of the encoder; ``*_groups`` = 1 everywhere gives BERT, 4 gives SqueezeBERT's grouping."""

    vocab_size: int = 30522
    hidden: int = 384
    layers: int = 6
    heads: int = 12
    ffn: int = 1536
    max_positions: int = 512
    qkv_groups: int = 1
    intermediate_groups: int = 1
    output_groups: int = 1
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1
    # ALBERT-style factorized word embeddings: a vocab x embedding_dim table then an embedding_dim x hidden
    # projection; 0 = one vocab x hidden table.
    embedding_dim: int = 0

    @property
    def factorized(self) -> bool:
        return 0 < self.embedding_dim < self.hidden

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


def padding_bias(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 1, 1, keys) additive attention bias that keeps every query off the padding."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * -10000.0


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states over real tokens."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class GroupedLinear(nn.Module):
    """Kernel-size-1 grouped convolution over the last axis, one weight matrix per group."""

    def __init__(self, n_in: int, n_out: int, groups: int) -> None:
        super().__init__()
        if n_in % groups or n_out % groups:
            raise ValueError(f"{n_in}->{n_out} does not split into {groups} groups")
        self.groups = groups
        self.group_in = n_in // groups
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(n_in // groups, n_out // groups)) for _ in range(groups)
        )
        self.bias = nn.Parameter(torch.zeros(n_out))
        for w in self.weights:
            nn.init.normal_(w, std=0.02)

    def part(self, g: int, x: torch.Tensor) -> torch.Tensor:
        """Group ``g``'s output for its input slice, bias included (so ORT fuses the bias into the MatMul)."""
        n_out = self.weights[g].shape[1]
        return x @ self.weights[g] + self.bias[g * n_out : (g + 1) * n_out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1:
            return self.part(0, x)
        parts = x.split(self.group_in, dim=-1)
        return torch.cat([self.part(g, p) for g, p in enumerate(parts)], dim=-1)


class Layer(nn.Module):
    """One transformer block: self-attention (grouped q/k/v, dense output) then grouped FFN."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.head_dim = cfg.hidden // cfg.heads
        self.query = GroupedLinear(cfg.hidden, cfg.hidden, cfg.qkv_groups)
        self.key = GroupedLinear(cfg.hidden, cfg.hidden, cfg.qkv_groups)
        self.value = GroupedLinear(cfg.hidden, cfg.hidden, cfg.qkv_groups)
        self.attn_out = GroupedLinear(cfg.hidden, cfg.hidden, 1)
        self.attn_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.intermediate = GroupedLinear(cfg.hidden, cfg.ffn, cfg.intermediate_groups)
        self.output = GroupedLinear(cfg.ffn, cfg.hidden, cfg.output_groups)
        self.out_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).transpose(1, 2)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k and v from one fused MatMul per group: the input is split and quantized once, not thrice."""
        groups = self.query.groups
        parts = x.split(self.query.group_in, dim=-1) if groups > 1 else (x,)
        qs, ks, vs = [], [], []
        for g, p in enumerate(parts):
            lins = (self.query, self.key, self.value)
            n_out = self.query.weights[g].shape[1]
            w = torch.cat([lin.weights[g] for lin in lins], dim=1)
            b = torch.cat([lin.bias[g * n_out : (g + 1) * n_out] for lin in lins])
            q, k, v = (p @ w + b).split(n_out, dim=-1)
            qs.append(q)
            ks.append(k)
            vs.append(v)
        if groups == 1:
            return qs[0], ks[0], vs[0]
        return torch.cat(qs, dim=-1), torch.cat(ks, dim=-1), torch.cat(vs, dim=-1)

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        """Grouped FFN as independent per-group FFNs when both convolutions share the group count, which
        saves a concat and a split of the widest (intermediate) tensor."""
        if self.intermediate.groups != self.output.groups or self.intermediate.groups == 1:
            return self.output(F.gelu(self.intermediate(x)))
        parts = x.split(self.intermediate.group_in, dim=-1)
        return torch.cat(
            [self.output.part(g, F.gelu(self.intermediate.part(g, p))) for g, p in enumerate(parts)], dim=-1
        )

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._split_heads(t) for t in self._qkv(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + mask_bias
        probs = self.dropout(scores.softmax(dim=-1))
        ctx = (probs @ v).transpose(1, 2).reshape(x.shape)
        x = self.attn_norm(x + self.dropout(self.attn_out(ctx)))
        return self.out_norm(x + self.dropout(self._ffn(x)))


class MultiHeadClassifier(nn.Module):
    """Shared encoder, masked mean pooling, one linear classifier per head."""

    def __init__(self, cfg: EncoderConfig, heads: dict[str, int]) -> None:
        super().__init__()
        self.cfg = cfg
        self.word = nn.Embedding(cfg.vocab_size, cfg.embedding_dim if cfg.factorized else cfg.hidden)
        self.word_proj = nn.Linear(cfg.embedding_dim, cfg.hidden, bias=False) if cfg.factorized else None
        self.position = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.token_type = nn.Parameter(torch.zeros(cfg.hidden))
        self.embed_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.layers))
        self.dropout = nn.Dropout(cfg.dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(cfg.hidden, n) for name, n in heads.items()})

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        """Hidden states after the embeddings and after every layer (used for distillation)."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        words = self.word(input_ids)
        if self.word_proj is not None:
            words = self.word_proj(words)
        x = words + self.position(positions) + self.token_type
        x = self.dropout(self.embed_norm(x))
        mask_bias = padding_bias(attention_mask, x.dtype)
        states = [x]
        for layer in self.layers:
            x = layer(x, mask_bias)
            states.append(x)
        return states

    pool = staticmethod(mean_pool)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        states = self.encode(input_ids, attention_mask)
        pooled = self.dropout(self.pool(states[-1], attention_mask))
        return {name: head(pooled) for name, head in self.heads.items()}, states


class ExportWrapper(nn.Module):
    """Positional ONNX signature: (input_ids, attention_mask) -> one logits tensor per head."""

    def __init__(self, model: MultiHeadClassifier, head_names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.head_names = head_names

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, _ = self.model(input_ids, attention_mask)
        return tuple(logits[name] for name in self.head_names)
