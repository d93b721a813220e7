"""The denoiser: a bidirectional LTG-BERT encoder with AdaLN-Zero time conditioning.

Read top to bottom:

1. `log_bucket_position`  - relative distances -> log-spaced buckets (LTG-BERT / DeBERTa).
2. `LayerNorm`            - LayerNorm that always computes in float32 (safe under bf16 autocast).
3. `Embedding`            - word embedding (no absolute positions) + the relative-position table.
4. `TimeEmbedding`        - mask rate -> sinusoid -> MLP -> conditioning vector (MDLM / DiT).
5. `Attention`            - disentangled (content + relative position) gated attention, run
                            through `scaled_dot_product_attention` with the position terms as bias
                            (training on a CPU: the same computed explicitly, in fewer passes).
6. `FeedForward`          - GeGLU MLP with an inner LayerNorm (LTG-BERT).
7. `Block`                - pre-norm residual layer with AdaLN-Zero shift / scale / gate.
8. `DiffusionLM`          - embedding -> blocks -> tied-weight MLM head.

Plain PyTorch: no file I/O, no distributed code. Every parameter takes part in a normal
(conditioned) forward pass, so DDP needs no `find_unused_parameters`.

Self-contained: this file imports only torch and the standard library, never the rest of the
project, because `trainer/export.py` ships it byte for byte in every Hugging Face export (as
`mdlm_model.py`, beside a thin transformers wrapper). The network takes any object with the
attributes listed in `ArchitectureConfig`; `trainer.config.ModelConfig` is the one the trainer
passes. (Not even a `TYPE_CHECKING` import of it: transformers' remote-code loader lists the
imports inside `if` blocks too, and would demand the training package.)
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ArchitectureConfig", "DiffusionLM", "build_model", "count_parameters", "log_bucket_position"]

LAYER_NORM_EPS = 1e-5


class ArchitectureConfig(Protocol):
    """What the network reads from its config (the fields of `trainer.config.ModelConfig`)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    position_bucket_size: int
    max_position: int
    dropout: float
    attention_dropout: float
    time_conditioning: bool
    cond_dim: int
    time_embedding_dim: int
    time_input_scale: float


# --------------------------------------------------------------------------------------
# Relative positions
# --------------------------------------------------------------------------------------


@torch.no_grad()
def log_bucket_position(relative_pos: Tensor, bucket_size: int, max_position: int) -> Tensor:
    """Map signed distances i - j to signed buckets in [-(bucket_size - 1), bucket_size - 1].

    As LTG-BERT's `make_log_bucket_position`: distances with |d| <= bucket_size // 2 keep
    their own bucket (nearby words matter most and are told apart exactly); beyond that the
    buckets grow logarithmically so that |d| = max_position - 1 lands on the last bucket.
    Distances past max_position share that last bucket.
    """
    mid = bucket_size // 2
    sign = torch.sign(relative_pos)
    # Clamp from below so the log never sees 0 (those entries are replaced by the exact
    # branch anyway) and from above so longer distances saturate at the last bucket.
    abs_pos = relative_pos.abs().clamp(min=mid, max=max(max_position - 1, mid))
    # Guard the denominator for configs where max_position - 1 <= mid (then every distance
    # that can occur is in the exact range and the log branch is never selected).
    log_span = math.log(max(max_position - 1, mid + 1) / mid)
    log_pos = torch.ceil(torch.log(abs_pos.double() / mid) / log_span * (mid - 1)).long() + mid
    return torch.where(relative_pos.abs() <= mid, relative_pos, log_pos * sign).long()


def relative_position_indices(bucket_size: int, max_position: int) -> Tensor:
    """[max_position, max_position] indices into the (2 * bucket_size - 1)-row relative table.

    Entry [i, j] is the bucket of i - j (query i, key j), shifted to be non-negative.
    """
    positions = torch.arange(max_position)
    relative = positions[:, None] - positions[None, :]
    return log_bucket_position(relative, bucket_size, max_position) + bucket_size - 1


def bucket_ranges(bucket_size: int, max_position: int) -> list[tuple[int, int]]:
    """For every length n = 1..max_position, the first and last row of the relative table that a
    length-n sequence uses (entry n - 1), as plain ints.

    Buckets are non-decreasing in i - j, so the distances |i - j| <= n - 1 use exactly the rows
    from bucket(-(n - 1)) to bucket(n - 1). Computed once, on the CPU whatever the default
    device (a model built on the meta device too): looking a length up costs no device sync,
    and under torch.compile it is a constant, not a traced computation.
    """
    distances = torch.arange(max_position, device="cpu")
    first = (log_bucket_position(-distances, bucket_size, max_position) + bucket_size - 1).tolist()
    last = (log_bucket_position(distances, bucket_size, max_position) + bucket_size - 1).tolist()
    return list(zip(first, last))


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back to the input's dtype.

    Under bf16 autocast the mean/variance of a 768-wide bf16 vector are noticeably off;
    CUDA autocast already upcasts layer_norm, CPU autocast does not, so we do it here to
    get the same numerics everywhere.
    """

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        # Autocast leaves float32 layer_norm in float32 (CUDA lists it as an fp32 op, CPU
        # does not touch it), so upcasting the input is enough.
        y = F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)
        return y.to(x.dtype)


def norm(dim: int, affine: bool = False) -> LayerNorm:
    # LTG-BERT's LayerNorms have no learnable affine, except the relative-table one.
    return LayerNorm(dim, eps=LAYER_NORM_EPS, elementwise_affine=affine)


class Embedding(nn.Module):
    """Word embedding (LN, dropout; no absolute positions) and the relative-position table."""

    def __init__(self, config: ArchitectureConfig, vocab_size: int):
        super().__init__()
        d = config.hidden_size
        self.word_embedding = nn.Embedding(vocab_size, d)
        self.word_norm = norm(d)
        self.dropout = nn.Dropout(config.dropout)
        # One row per signed bucket: -(B-1) .. (B-1).
        self.relative_embedding = nn.Parameter(torch.empty(2 * config.position_bucket_size - 1, d))
        self.relative_norm = norm(d, affine=True)  # the model's only affine LayerNorm

    def forward(self, input_ids: Tensor) -> tuple[Tensor, Tensor]:
        words = self.dropout(self.word_norm(self.word_embedding(input_ids)))
        # The table is dropped out separately inside every attention layer (as LTG-BERT).
        relative = self.relative_norm(self.relative_embedding)
        return words, relative


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """[B] -> [B, dim] sinusoidal features, [cos | sin] halves (MDLM / DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimeEmbedding(nn.Module):
    """Mask rate -> conditioning vector c (B, cond_dim) that drives every AdaLN modulation."""

    def __init__(self, config: ArchitectureConfig):
        super().__init__()
        self.frequency_dim = config.time_embedding_dim
        # The rate lives in [0, 1]; with max period 10000 most sinusoid features would be
        # constant, so it is scaled first (as DiT does with its integer timesteps).
        self.input_scale = config.time_input_scale
        self.mlp = nn.Sequential(
            nn.Linear(config.time_embedding_dim, config.cond_dim),
            nn.SiLU(),
            nn.Linear(config.cond_dim, config.cond_dim),
        )

    def forward(self, mask_rate: Tensor) -> Tensor:
        features = timestep_embedding(mask_rate * self.input_scale, self.frequency_dim)
        # The trailing SiLU is MDLM's `F.silu(self.sigma_map(sigma))`; the AdaLN linears then
        # read c directly.
        return F.silu(self.mlp(features))


class Attention(nn.Module):
    """LTG-BERT disentangled attention with a GELU gate on the values.

    score(i, j) = [q_i.k_j + q_i.k_pos[r(i,j)] + k_j.q_pos[r(i,j)]] / sqrt(3 * head_dim)

    where r(i, j) is the bucket of i - j and q_pos / k_pos are the relative table projected
    by the same `in_proj_qk` as the content. The two position terms are computed cheaply
    against the (2B-1)-row table and gathered, then handed to SDPA as an additive bias, so
    the content part and the softmax run in PyTorch's fused kernels.

    Training on a CPU is the exception: there SDPA has no fused kernel for a bias that needs a
    gradient (nor for dropout) and runs its composite "math" path, and `_explicit_attention`
    computes the same thing (float32 scores and softmax, as that path does for bf16 inputs;
    the very same dropout masks for the same seed) with fewer passes over the [B, H, T, T]
    scores.
    """

    def __init__(self, config: ArchitectureConfig):
        super().__init__()
        d = config.hidden_size
        self.num_heads = config.num_heads
        self.head_dim = d // config.num_heads
        self.scale = 1.0 / math.sqrt(3 * self.head_dim)  # three score terms, each ~unit variance
        self.attention_dropout = config.attention_dropout
        self.in_proj_qk = nn.Linear(d, 2 * d, bias=True)
        self.in_proj_vg = nn.Linear(d, 2 * d, bias=True)  # value and gate
        self.out_norm = norm(d)
        self.out_proj = nn.Linear(d, d, bias=True)
        self.position_dropout = nn.Dropout(config.attention_dropout)
        self.dropout = nn.Dropout(config.dropout)

    def _heads(self, x: Tensor) -> Tensor:
        # [B, T, D] -> [B, H, T, head_dim]
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def position_bias(self, query: Tensor, key: Tensor, relative: Tensor, indices: Tensor) -> Tensor:
        """Content-to-position + position-to-content scores, [B, H, T, T], already scaled."""
        q_pos, k_pos = self.in_proj_qk(self.position_dropout(relative)).chunk(2, dim=-1)  # [R, D] each
        q_pos = q_pos.unflatten(-1, (self.num_heads, self.head_dim))  # [R, H, hd]
        k_pos = k_pos.unflatten(-1, (self.num_heads, self.head_dim))
        batch, heads, length, _ = query.shape
        # Score every query / key against every bucket in use ([B, H, T, R]), then pick each
        # pair's bucket; much cheaper than materialising [T, T, D] positions. einsum makes one
        # [B*T, hd] x [hd, R] product per head; matmul's broadcasting copied the table once per
        # sequence, which dominated short batches (benchmarks/throughput.py, PLL scoring).
        c2p = torch.einsum("bhid,rhd->bhir", query, k_pos)  # [b,h,i,r] = q_i . k_pos[r]
        p2c = torch.einsum("bhjd,rhd->bhjr", key, q_pos)  # [b,h,j,r] = k_j . q_pos[r]
        index = indices.expand(batch, heads, length, length)
        c2p = torch.gather(c2p, -1, index)  # [b,h,i,j] = q_i . k_pos[r(i,j)]
        p2c = torch.gather(p2c, -1, index.transpose(-1, -2)).transpose(-1, -2)  # k_j . q_pos[r(i,j)]
        return (c2p + p2c) * self.scale

    def forward(self, x: Tensor, relative: Tensor, indices: Tensor, key_mask: Tensor | None) -> Tensor:
        """x: normalised (and modulated) hidden [B, T, D]; relative: [R, D] normed table;
        indices: [T, T] bucket indices; key_mask: [B, T] bool, True = real token, or None."""
        value, gate = self.in_proj_vg(x).chunk(2, dim=-1)
        if self.training and x.device.type == "cpu":
            context = self._explicit_attention(x, value, relative, indices, key_mask)
        else:
            context = self._sdpa_attention(x, value, relative, indices, key_mask)
        context = context * F.gelu(gate)  # exact GELU, as LTG-BERT
        return self.dropout(self.out_proj(self.out_norm(context)))

    def _sdpa_attention(self, x: Tensor, value: Tensor, relative: Tensor, indices: Tensor,
                        key_mask: Tensor | None) -> Tensor:
        query, key = self.in_proj_qk(x).chunk(2, dim=-1)
        query, key, value = self._heads(query), self._heads(key), self._heads(value)

        # SDPA wants a float mask in the query's dtype; cast before masking so the fill
        # value below is representable (float32's min would round to -inf in bf16).
        bias = self.position_bias(query, key, relative, indices).to(query.dtype)
        if key_mask is not None:
            # A large finite negative rather than -inf: a row whose keys are all padding then
            # gets a harmless uniform softmax instead of NaNs that would leak into real rows
            # through the next layer's values. Half of the dtype's min leaves headroom so
            # adding the content scores cannot overflow (matters for fp16); exp() of it is
            # exactly 0, so padded keys contribute nothing to real positions.
            bias = bias.masked_fill(~key_mask[:, None, None, :], torch.finfo(bias.dtype).min / 2)

        context = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=bias,
            dropout_p=self.attention_dropout if self.training else 0.0,
            scale=self.scale,
        )
        return context.transpose(1, 2).flatten(-2)  # [B, T, D]

    def _explicit_attention(self, x: Tensor, value: Tensor, relative: Tensor, indices: Tensor,
                            key_mask: Tensor | None) -> Tensor:
        """The training path on a CPU: what SDPA's math path does with the bias and dropout,
        in fewer passes. The position terms are scaled on the small table instead of on
        [B, H, T, T], both are summed in place, the mask is filled in place, and the content
        scores are added to the bias by the matmul itself (baddbmm) instead of by a separate
        pass; SDPA's extra checks for fully masked rows are not needed (the bias is finite)."""
        batch, length, d = x.shape
        heads, hd = self.num_heads, self.head_dim
        rows = batch * heads
        # q and k as [2, B, H, T, hd] in one copy.
        qk = self.in_proj_qk(x).view(batch, length, 2, heads, hd).permute(2, 0, 3, 1, 4).contiguous()
        query, key = qk[0], qk[1]
        q_pos, k_pos = (self.in_proj_qk(self.position_dropout(relative)) * self.scale).chunk(2, dim=-1)  # [R, D]
        buckets = q_pos.shape[0]
        q_pos = q_pos.view(buckets, heads, hd).permute(1, 2, 0)  # [H, hd, R]
        k_pos = k_pos.view(buckets, heads, hd).permute(1, 2, 0)
        c2p = torch.matmul(query, k_pos).view(rows, length, buckets)  # [bh, i, r] = q_i . k_pos[r]
        p2c = torch.matmul(key, q_pos).view(rows, length, buckets)  # [bh, j, r] = k_j . q_pos[r]
        index = indices.expand(rows, length, length)
        bias = torch.gather(c2p, -1, index)  # [bh, i, j] = q_i . k_pos[r(i,j)]
        bias = bias.add_(torch.gather(p2c, -1, index.transpose(-1, -2)).transpose(-1, -2))  # + k_j . q_pos[r(i,j)]
        if key_mask is not None:  # the finite fill of _sdpa_attention
            bias = bias.view(batch, heads, length, length).masked_fill_(
                ~key_mask[:, None, None, :], torch.finfo(bias.dtype).min / 2).view(rows, length, length)
        out_dtype = qk.dtype
        # Scores, softmax and the weighted values in float32 whatever the autocast dtype, as
        # SDPA's math path computes them on a CPU (it upcasts bf16 / fp16 inputs).
        with torch.autocast(x.device.type, enabled=False):
            query = query.float().reshape(rows, length, hd)
            key = key.float().reshape(rows, length, hd)
            value = value.float().unflatten(-1, (heads, hd)).transpose(1, 2).reshape(rows, length, hd)
            scores = torch.baddbmm(bias.float(), query, key.transpose(1, 2), alpha=self.scale)
            # F.dropout, as SDPA's math path applies it: the same masks for the same seed.
            probs = F.dropout(torch.softmax(scores, dim=-1), self.attention_dropout, training=True)
            context = torch.bmm(probs, value).view(batch, heads, length, hd).transpose(1, 2)
        if context.dtype != out_dtype:
            context = context.to(out_dtype, memory_format=torch.contiguous_format)
        return context.reshape(batch, length, d)  # [B, T, D]


class FeedForward(nn.Module):
    """GeGLU MLP with a LayerNorm before the down projection (LTG-BERT). Input already normed."""

    def __init__(self, config: ArchitectureConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.inner_norm = norm(config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        x, gate = self.up(x).chunk(2, dim=-1)  # first half value, second half gate
        x = x * F.gelu(gate, approximate="tanh")
        return self.dropout(self.down(self.inner_norm(x)))


class Block(nn.Module):
    """Pre-norm layer; with conditioning, AdaLN-Zero modulates each sublayer's input norm
    and gates its residual branch (DiT). The gates start at 0, so every layer starts as the
    identity and the conditioning is learned from there."""

    def __init__(self, config: ArchitectureConfig):
        super().__init__()
        d = config.hidden_size
        self.attention_norm = norm(d)
        self.attention = Attention(config)
        self.mlp_norm = norm(d)
        self.mlp = FeedForward(config)
        # Only a time-conditioned model has these parameters (zero-initialised in
        # DiffusionLM._init_weights).
        self.adaLN_modulation = nn.Linear(config.cond_dim, 6 * d, bias=True) if config.time_conditioning else None

    def forward(
        self, h: Tensor, relative: Tensor, indices: Tensor, key_mask: Tensor | None, c: Tensor | None
    ) -> Tensor:
        if c is None:
            # Unconditioned: a plain pre-norm LTG-BERT layer (gate 1, no shift / scale).
            h = h + self.attention(self.attention_norm(h), relative, indices, key_mask)
            return h + self.mlp(self.mlp_norm(h))
        # Each of the six is [B, 1, D], broadcast over positions. The modulation norm(h) * (1 +
        # scale) + shift (`1 + scale`: a zero-initialised modulation is the identity, DiT) and the
        # gated residual h + gate * branch are each one addcmul: one pass over [B, T, D], not two.
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c)[:, None, :].chunk(6, dim=-1)
        x = torch.addcmul(shift_a, self.attention_norm(h), 1 + scale_a)
        h = torch.addcmul(h, gate_a, self.attention(x, relative, indices, key_mask))
        x = torch.addcmul(shift_m, self.mlp_norm(h), 1 + scale_m)
        return torch.addcmul(h, gate_m, self.mlp(x))


class Head(nn.Module):
    """LTG-BERT's MLM head: LN -> Linear -> GELU -> LN -> dropout -> tied projection to V."""

    def __init__(self, config: ArchitectureConfig, vocab_size: int):
        super().__init__()
        d = config.hidden_size
        self.in_norm = norm(d)
        self.dense = nn.Linear(d, d, bias=True)
        self.out_norm = norm(d)
        self.dropout = nn.Dropout(config.dropout)
        self.decoder = nn.Linear(d, vocab_size, bias=True)  # weight tied to the word embedding

    def forward(self, x: Tensor) -> Tensor:
        x = self.out_norm(F.gelu(self.dense(self.in_norm(x))))
        return self.decoder(self.dropout(x))


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


class DiffusionLM(nn.Module):
    """Masked-diffusion denoiser: token ids (with [MASK]s) -> logits over the vocabulary."""

    def __init__(self, config: ArchitectureConfig, vocab_size: int):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.embedding = Embedding(config, vocab_size)
        self.time_embedding = TimeEmbedding(config) if config.time_conditioning else None
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.classifier = Head(config, vocab_size)
        # Tie input and output embeddings (LTG-BERT); the output keeps its own bias.
        self.classifier.decoder.weight = self.embedding.word_embedding.weight
        # Bucket indices for every (query, key) pair up to max_position, sliced per batch.
        # Non-persistent: it is a pure function of the config, so it stays out of checkpoints.
        self.register_buffer(
            "position_indices",
            relative_position_indices(config.position_bucket_size, config.max_position),
            persistent=False,
        )
        self.bucket_ranges = bucket_ranges(config.position_bucket_size, config.max_position)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # LTG-BERT: truncated normal with std sqrt(2 / (5d)) cut at +-2 std, zero biases.
        d = self.config.hidden_size
        std = math.sqrt(2.0 / (5.0 * d))

        def trunc_normal_(weight: Tensor) -> None:
            nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2 * std, b=2 * std)

        time_mlp = set(self.time_embedding.modules()) if self.time_embedding is not None else set()
        for module in self.modules():
            if module in time_mlp:
                continue  # the time MLP keeps PyTorch's default init (as MDLM / DiT)
            if isinstance(module, (nn.Linear, nn.Embedding)):
                trunc_normal_(module.weight)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        trunc_normal_(self.embedding.relative_embedding)
        for i, layer in enumerate(self.layers):
            # Depth scaling of the FFN (LTG-BERT) keeps deep residual streams from growing.
            layer.mlp.up.weight.mul_(math.sqrt(1.0 / (2.0 * (i + 1))))
            layer.mlp.down.weight.mul_(math.sqrt(1.0 / (2.0 * (i + 1))))
            if layer.adaLN_modulation is not None:
                # AdaLN-Zero: identity modulation and closed gates at the start.
                nn.init.zeros_(layer.adaLN_modulation.weight)
                nn.init.zeros_(layer.adaLN_modulation.bias)

    def encode(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        mask_rate: Tensor | None = None,
        condition: bool = True,
    ) -> Tensor:
        """[B, T] ids -> [B, T, D] final hidden states (no final norm: the head starts with one).

        attention_mask: [B, T] bool, True = real token; keys that are False are ignored.
        mask_rate: [B] (or a scalar) in [0, 1], required when the model is time-conditioned
        and `condition` is True; ignored otherwise. `condition=False` bypasses the AdaLN
        modulation entirely (gates 1, no shift / scale).
        """
        batch, length = input_ids.shape
        if length > self.config.max_position:
            raise ValueError(f"sequence length {length} exceeds max_position {self.config.max_position}")
        if attention_mask is not None:
            # Whether a batch has padding at all is the caller's to decide, on the host, where it
            # costs no device sync: pass None then (masking nothing changes nothing, and costs a
            # pass over [B, H, T, T] per layer each way).
            attention_mask = attention_mask.to(device=input_ids.device, dtype=torch.bool)

        c = None
        if self.time_embedding is not None and condition:
            if mask_rate is None:
                # No silent default: whether to condition on the realised mask fraction, a
                # fixed rate, or nothing is the caller's decision.
                raise ValueError("this model is time-conditioned: pass mask_rate, or condition=False")
            mask_rate = torch.as_tensor(mask_rate, dtype=torch.float32, device=input_ids.device)
            mask_rate = mask_rate.reshape(-1).expand(batch) if mask_rate.numel() == 1 else mask_rate.reshape(batch)
            c = self.time_embedding(mask_rate)

        h, relative = self.embedding(input_ids)
        # Only the table rows these distances use (15 of 63 for an 8-token sentence).
        first, last = self.bucket_ranges[length - 1]
        relative = relative[first : last + 1]
        indices = self.position_indices[:length, :length] - first
        for layer in self.layers:
            h = layer(h, relative, indices, attention_mask, c)
        return h

    def head(self, hidden: Tensor) -> Tensor:
        """[..., D] -> [..., V] logits; works on selected positions only, e.g. [N, D]."""
        return self.classifier(hidden)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        mask_rate: Tensor | None = None,
        condition: bool = True,
        output_mask: Tensor | None = None,
        output_positions: Tensor | None = None,
    ) -> Tensor:
        """[B, T] ids -> [B, T, V] logits, or [N, V] at the N positions where `output_mask`
        ([B, T] bool) is True, or at `output_positions` ([N] indices into the flattened B x T,
        row-major): the d x V output projection dominates a small model's cost, and the loss
        only needs the masked positions. Indices cost no device sync; a boolean mask does (the
        host must learn N before it can size the result)."""
        hidden = self.encode(input_ids, attention_mask, mask_rate, condition=condition)
        if output_positions is not None:
            hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, output_positions)
        elif output_mask is not None:
            hidden = hidden[output_mask]
        return self.head(hidden)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars; a tied parameter is counted once."""
    # `parameters()` already de-duplicates shared tensors (the tied embedding).
    return sum(p.numel() for p in model.parameters())


def build_model(config: ArchitectureConfig, vocab_size: int) -> DiffusionLM:
    return DiffusionLM(config, vocab_size)
