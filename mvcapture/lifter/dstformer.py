"""DSTformer, the 2D-to-3D lifter of MotionBERT, with configurations registered by name.

Parameter names and shapes follow MotionBERT's DSTformer so its `model_pos` checkpoints load strictly.
Input (B, T, 17, 3): normalized x, y and confidence; output (B, T, 17, 3): normalized 2.5D.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_MODES = ("sdpa", "reference")


@dataclass(frozen=True)
class DSTformerConfig:
    """Architecture of one DSTformer; `maxlen` is the longest window in frames (the temporal embedding)."""

    dim_feat: int = 256
    dim_rep: int = 512
    depth: int = 5
    num_heads: int = 8
    mlp_ratio: float = 4.0
    maxlen: int = 243
    num_joints: int = 17
    dim_in: int = 3
    dim_out: int = 3
    qkv_bias: bool = True
    att_fuse: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DSTformerConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown DSTformer config keys: {unknown} (known: {sorted(known)})")
        return cls(**values)


# Named configurations. `full` and `lite` are MotionBERT's released ones (42,466,317 and 16,001,549
# parameters); `small` is the default CPU-live lifter (81-frame window, 2.7 s at 30 fps, ~15 ms per
# window on two laptop-class cores); `medium` is the candidate for offline processing (4.9 × small's
# arithmetic per window: not live on a CPU core); `tiny` is for tests.
CONFIGS: dict[str, DSTformerConfig] = {
    "full": DSTformerConfig(dim_feat=512, dim_rep=512, depth=5, num_heads=8, mlp_ratio=2, maxlen=243),
    "lite": DSTformerConfig(dim_feat=256, dim_rep=512, depth=5, num_heads=8, mlp_ratio=4, maxlen=243),
    "medium": DSTformerConfig(dim_feat=128, dim_rep=256, depth=5, num_heads=8, mlp_ratio=2, maxlen=81),
    "small": DSTformerConfig(dim_feat=64, dim_rep=256, depth=4, num_heads=4, mlp_ratio=2, maxlen=81),
    "tiny": DSTformerConfig(dim_feat=32, dim_rep=64, depth=2, num_heads=4, mlp_ratio=2, maxlen=27),
}


def resolve_config(config: str | dict | DSTformerConfig) -> tuple[str, DSTformerConfig]:
    """A config name, dict or object → (name, config); the name is "custom" when it matches none."""
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown lifter config {config!r}; choose one of {sorted(CONFIGS)}")
        return config, CONFIGS[config]
    if isinstance(config, dict):
        config = DSTformerConfig.from_dict(config)
    return config_name(config), config


def config_name(config: DSTformerConfig) -> str:
    """The registered name of `config`, or "custom"."""
    for name, known in CONFIGS.items():
        if known == config:
            return name
    return "custom"


class Attention(nn.Module):
    """Multi-head self-attention over joints of a frame (`spatial`) or frames of a joint (`temporal`).

    Tokens arrive as (B*T, J, C). `mode` picks fused `scaled_dot_product_attention` ("sdpa") or an
    explicit fp32 matmul-softmax ("reference"); both compute the same function.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, axis: str):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim_feat {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.axis = axis
        self.mode = "sdpa"
        self.proj = nn.Linear(dim, dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        BT, J, C = x.shape
        H = self.num_heads
        # Channels of qkv are laid out (3, heads, head_dim).
        qkv = self.qkv(x).reshape(BT, J, 3, H, C // H)
        if self.axis == "spatial":
            qkv = qkv.permute(2, 0, 3, 1, 4)  # 3, BT, H, J, d
        else:
            # (B*J, H, T, d): four dims keep the fused CPU and GPU kernels on their fast path.
            B, T = BT // num_frames, num_frames
            qkv = qkv.reshape(B, T, J, 3, H, C // H).permute(3, 0, 2, 4, 1, 5).reshape(3, B * J, H, T, C // H)
        q, k, v = qkv.unbind(0)
        out = _attend(q, k, v, self.mode)
        if self.axis == "spatial":
            out = out.transpose(1, 2).reshape(BT, J, C)
        else:
            out = out.reshape(B, J, H, T, C // H).permute(0, 3, 1, 2, 4).reshape(BT, J, C)
        return self.proj(out)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    if mode != "reference":
        raise ValueError(f"attention mode must be one of {ATTENTION_MODES}, got {mode!r}")
    dtype = q.dtype
    with torch.autocast(q.device.type, enabled=False):
        q, k, v = q.float(), k.float(), v.float()
        weights = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        return (weights.softmax(dim=-1) @ v).to(dtype)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm residual spatial and temporal attention + MLP; `order` "st" or "ts" says which runs first."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, order: str):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1_s = nn.LayerNorm(dim, eps=1e-6)
        self.norm1_t = nn.LayerNorm(dim, eps=1e-6)
        self.attn_s = Attention(dim, num_heads, qkv_bias, "spatial")
        self.attn_t = Attention(dim, num_heads, qkv_bias, "temporal")
        self.norm2_s = nn.LayerNorm(dim, eps=1e-6)
        self.norm2_t = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_s = Mlp(dim, hidden)
        self.mlp_t = Mlp(dim, hidden)
        self.order = order

    def _spatial(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = x + self.attn_s(self.norm1_s(x), num_frames)
        return x + self.mlp_s(self.norm2_s(x))

    def _temporal(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = x + self.attn_t(self.norm1_t(x), num_frames)
        return x + self.mlp_t(self.norm2_t(x))

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        if self.order == "st":
            return self._temporal(self._spatial(x, num_frames), num_frames)
        return self._spatial(self._temporal(x, num_frames), num_frames)


class DSTformer(nn.Module):
    """Dual-stream spatio-temporal transformer (MotionBERT), parameter-compatible with its checkpoints.

    Shape:
        input (B, T, J, dim_in) with T <= maxlen; output (B, T, J, dim_out).
    """

    def __init__(self, config: DSTformerConfig | str | dict = "full"):
        super().__init__()
        self.config_name, self.config = resolve_config(config)
        c = self.config
        self.temp_embed = nn.Parameter(torch.zeros(1, c.maxlen, 1, c.dim_feat))
        self.pos_embed = nn.Parameter(torch.zeros(1, c.num_joints, c.dim_feat))
        self.joints_embed = nn.Linear(c.dim_in, c.dim_feat)
        self.blocks_st = nn.ModuleList(
            Block(c.dim_feat, c.num_heads, c.mlp_ratio, c.qkv_bias, "st") for _ in range(c.depth))
        self.blocks_ts = nn.ModuleList(
            Block(c.dim_feat, c.num_heads, c.mlp_ratio, c.qkv_bias, "ts") for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim_feat, eps=1e-6)
        self.pre_logits = nn.Sequential()
        self.pre_logits.add_module("fc", nn.Linear(c.dim_feat, c.dim_rep))
        self.pre_logits.add_module("act", nn.Tanh())
        self.head = nn.Linear(c.dim_rep, c.dim_out)
        self.ts_attn = nn.ModuleList(nn.Linear(2 * c.dim_feat, 2) for _ in range(c.depth)) if c.att_fuse else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """MotionBERT's initialisation: truncated normal (std 0.02) weights, zero biases, fusion 50/50."""
        nn.init.trunc_normal_(self.temp_embed, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.ts_attn is not None:
            for fuse in self.ts_attn:
                nn.init.zeros_(fuse.weight)
                nn.init.constant_(fuse.bias, 0.5)

    @property
    def maxlen(self) -> int:
        return self.config.maxlen

    @property
    def attention(self) -> str:
        """"sdpa" (fused kernel) or "reference" (eager fp32 matmul-softmax)."""
        return self.blocks_st[0].attn_s.mode

    @attention.setter
    def attention(self, mode: str) -> None:
        if mode not in ATTENTION_MODES:
            raise ValueError(f"attention mode must be one of {ATTENTION_MODES}, got {mode!r}")
        for module in self.modules():
            if isinstance(module, Attention):
                module.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, J, _ = x.shape
        if T > self.config.maxlen:
            raise ValueError(f"window of {T} frames is longer than this lifter's maxlen {self.config.maxlen}")
        x = self.joints_embed(x) + self.pos_embed
        x = (x + self.temp_embed[:, :T]).reshape(B * T, J, -1)
        for i, (block_st, block_ts) in enumerate(zip(self.blocks_st, self.blocks_ts)):
            x_st = block_st(x, T)
            x_ts = block_ts(x, T)
            if self.ts_attn is not None:
                alpha = self.ts_attn[i](torch.cat([x_st, x_ts], dim=-1)).softmax(dim=-1)
                x = x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]
            else:
                x = 0.5 * (x_st + x_ts)
        x = self.norm(x).reshape(B, T, J, -1)
        return self.head(self.pre_logits(x))


def create_lifter(name: str = "small", **overrides) -> DSTformer:
    """Build a randomly initialised DSTformer from a named config, with fields overridden by keyword."""
    _, config = resolve_config(name)
    if overrides:
        config = dataclasses.replace(config, **overrides)
    return DSTformer(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
