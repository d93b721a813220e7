"""An exported MDLM denoiser for transformers: the trainer's `DiffusionLM`, forward pass only.

Shipped inside every exported model folder and loaded with `trust_remote_code=True`, without the
training package installed: it imports only torch and transformers. The math is the trainer's
(`trainer/model.py`) line for line, with the same parameter names under `model.` (encoder)
and `classifier.` (MLM head), so an exported state dict loads 1:1.

What differs from the trainer is only what the evaluation pipeline cannot supply:
- No time is passed. `config.eval_time_conditioning` decides the rate inside `forward`:
  "mask_fraction" (the row's <mask> count over its real tokens, counting the masks: exactly the
  trainer's `evaluate.py`), "fixed" (`config.eval_fixed_rate`), or "off" (no modulation).
- No attention mask may be passed; then, as in the trainer, every non-<pad> token is attended.
- `token_type_ids` and other tokenizer outputs are accepted and ignored.
- Special-token logits are set to the float32 minimum (the trainer's SUBS uses -inf; both give
  the same log-probabilities for real tokens, the finite value keeps p * log p free of NaNs).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput

from .configuration_mdlm import MdlmConfig


@torch.no_grad()
def log_bucket_position(relative_pos, bucket_size, max_position):
    """Signed distances i - j -> signed log-spaced buckets (LTG-BERT): exact up to bucket_size // 2."""
    mid = bucket_size // 2
    sign = torch.sign(relative_pos)
    abs_pos = relative_pos.abs().clamp(min=mid, max=max(max_position - 1, mid))
    log_span = math.log(max(max_position - 1, mid + 1) / mid)
    log_pos = torch.ceil(torch.log(abs_pos.double() / mid) / log_span * (mid - 1)).long() + mid
    return torch.where(relative_pos.abs() <= mid, relative_pos, log_pos * sign).long()


def relative_position_indices(length, bucket_size, max_position, device=None):
    """[T, T] indices into the relative table. A bucket depends only on i - j, so this equals the
    trainer's [max_position, max_position] table sliced to [:T, :T]; built per call (T^2 is cheap)
    instead of kept as a buffer, so meta-device initialisation never leaves it empty."""
    positions = torch.arange(length, device=device)
    relative = positions[:, None] - positions[None, :]
    return log_bucket_position(relative, bucket_size, max_position) + bucket_size - 1


def bucket_range(length, bucket_size, max_position):
    """First and last table row a length-`length` sequence uses (buckets are monotone in i - j)."""
    ends = log_bucket_position(torch.tensor([1 - length, length - 1]), bucket_size, max_position) + bucket_size - 1
    return int(ends[0]), int(ends[1])


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back (the trainer's numerics under bf16)."""

    def forward(self, x):
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


def norm(config, dim, affine=False):
    return LayerNorm(dim, eps=config.layer_norm_eps, elementwise_affine=affine)


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class Embedding(nn.Module):
    def __init__(self, config):
        super().__init__()
        d = config.hidden_size
        self.word_embedding = nn.Embedding(config.vocab_size, d)
        self.word_norm = norm(config, d)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.relative_embedding = nn.Parameter(torch.empty(2 * config.position_bucket_size - 1, d))
        self.relative_norm = norm(config, d, affine=True)

    def forward(self, input_ids):
        words = self.dropout(self.word_norm(self.word_embedding(input_ids)))
        return words, self.relative_norm(self.relative_embedding)


def timestep_embedding(t, dim, max_period=10000.0):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimeEmbedding(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.frequency_dim = config.time_embedding_dim
        self.input_scale = config.time_input_scale
        self.mlp = nn.Sequential(
            nn.Linear(config.time_embedding_dim, config.cond_dim),
            nn.SiLU(),
            nn.Linear(config.cond_dim, config.cond_dim),
        )

    def forward(self, mask_rate):
        return F.silu(self.mlp(timestep_embedding(mask_rate * self.input_scale, self.frequency_dim)))


class Attention(nn.Module):
    """Disentangled (content + relative position) attention with a GELU gate on the values."""

    def __init__(self, config):
        super().__init__()
        d = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = d // config.num_attention_heads
        self.scale = 1.0 / math.sqrt(3 * self.head_dim)
        self.attention_dropout = config.attention_probs_dropout_prob
        self.in_proj_qk = nn.Linear(d, 2 * d, bias=True)
        self.in_proj_vg = nn.Linear(d, 2 * d, bias=True)
        self.out_norm = norm(config, d)
        self.out_proj = nn.Linear(d, d, bias=True)
        self.position_dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def _heads(self, x):
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def position_bias(self, query, key, relative, indices):
        q_pos, k_pos = self.in_proj_qk(self.position_dropout(relative)).chunk(2, dim=-1)
        q_pos = q_pos.unflatten(-1, (self.num_heads, self.head_dim))
        k_pos = k_pos.unflatten(-1, (self.num_heads, self.head_dim))
        batch, heads, length, _ = query.shape
        c2p = torch.einsum("bhid,rhd->bhir", query, k_pos)
        p2c = torch.einsum("bhjd,rhd->bhjr", key, q_pos)
        index = indices.expand(batch, heads, length, length)
        c2p = torch.gather(c2p, -1, index)
        p2c = torch.gather(p2c, -1, index.transpose(-1, -2)).transpose(-1, -2)
        return (c2p + p2c) * self.scale

    def forward(self, x, relative, indices, key_mask):
        query, key = self.in_proj_qk(x).chunk(2, dim=-1)
        value, gate = self.in_proj_vg(x).chunk(2, dim=-1)
        query, key, value = self._heads(query), self._heads(key), self._heads(value)
        bias = self.position_bias(query, key, relative, indices).to(query.dtype)
        # Finite fill (not -inf): an all-padding row stays NaN-free.
        bias = bias.masked_fill(~key_mask[:, None, None, :], torch.finfo(bias.dtype).min / 2)
        context = F.scaled_dot_product_attention(
            query, key, value, attn_mask=bias,
            dropout_p=self.attention_dropout if self.training else 0.0, scale=self.scale,
        )
        context = context.transpose(1, 2).flatten(-2) * F.gelu(gate)
        return self.dropout(self.out_proj(self.out_norm(context)))


class FeedForward(nn.Module):
    """GeGLU with a LayerNorm before the down projection."""

    def __init__(self, config):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.inner_norm = norm(config, config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x):
        x, gate = self.up(x).chunk(2, dim=-1)
        return self.dropout(self.down(self.inner_norm(x * F.gelu(gate, approximate="tanh"))))


class Block(nn.Module):
    """Pre-norm layer; with a conditioning vector, AdaLN-Zero shift / scale / gate (DiT)."""

    def __init__(self, config):
        super().__init__()
        d = config.hidden_size
        self.attention_norm = norm(config, d)
        self.attention = Attention(config)
        self.mlp_norm = norm(config, d)
        self.mlp = FeedForward(config)
        self.adaLN_modulation = nn.Linear(config.cond_dim, 6 * d, bias=True) if config.time_conditioning else None

    def forward(self, h, relative, indices, key_mask, c):
        if c is None:
            h = h + self.attention(self.attention_norm(h), relative, indices, key_mask)
            return h + self.mlp(self.mlp_norm(h))
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c)[:, None, :].chunk(6, dim=-1)
        h = h + gate_a * self.attention(modulate(self.attention_norm(h), shift_a, scale_a), relative, indices, key_mask)
        return h + gate_m * self.mlp(modulate(self.mlp_norm(h), shift_m, scale_m))


class Head(nn.Module):
    """LN -> Linear -> GELU -> LN -> dropout -> projection to the vocabulary (weight tied)."""

    def __init__(self, config):
        super().__init__()
        d = config.hidden_size
        self.in_norm = norm(config, d)
        self.dense = nn.Linear(d, d, bias=True)
        self.out_norm = norm(config, d)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.decoder = nn.Linear(d, config.vocab_size, bias=True)

    def forward(self, x):
        return self.decoder(self.dropout(self.out_norm(F.gelu(self.dense(self.in_norm(x))))))


class MdlmPreTrainedModel(PreTrainedModel):
    config_class = MdlmConfig
    base_model_prefix = "model"
    _no_split_modules = ["Block"]

    @torch.no_grad()
    def _init_weights(self, module):
        # The trainer's init, for weights a checkpoint does not provide (e.g. building from a config).
        std = math.sqrt(2.0 / (5.0 * self.config.hidden_size))
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, LayerNorm) and module.weight is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, Embedding):
            nn.init.trunc_normal_(module.relative_embedding, mean=0.0, std=std, a=-2 * std, b=2 * std)
        elif isinstance(module, Block) and module.adaLN_modulation is not None:
            # apply() visits children first, so this overrides the generic Linear init: AdaLN-Zero.
            nn.init.zeros_(module.adaLN_modulation.weight)
            nn.init.zeros_(module.adaLN_modulation.bias)


class MdlmModel(MdlmPreTrainedModel):
    """The encoder: [B, T] ids -> `last_hidden_state` [B, T, hidden_size] (no final norm, as the trainer)."""

    # Loading the base model from a full (MLM) export: the head's weights are expected leftovers.
    _keys_to_ignore_on_load_unexpected = [r"classifier\."]

    def __init__(self, config):
        super().__init__(config)
        self.embedding = Embedding(config)
        self.time_embedding = TimeEmbedding(config) if config.time_conditioning else None
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.post_init()

    def get_input_embeddings(self):
        return self.embedding.word_embedding

    def set_input_embeddings(self, value):
        self.embedding.word_embedding = value

    def conditioning(self, input_ids, keep):
        """The conditioning vector [B, cond_dim] for the recorded policy, or None (no modulation)."""
        policy = self.config.eval_time_conditioning
        if self.time_embedding is None or policy == "off":
            return None
        if policy == "fixed":
            rate = torch.full((input_ids.shape[0],), self.config.eval_fixed_rate, device=input_ids.device)
        else:
            # The trainer's fraction: masked / maskable, where maskable (real tokens before masking)
            # = the masks plus the real tokens still visible. Specials and padding count as neither.
            masked = ((input_ids == self.config.mask_token_id) & keep).sum(1)
            visible = ((input_ids >= self.config.num_special_tokens) & keep).sum(1)
            rate = masked.float() / (masked + visible).clamp_min(1).float()
        return self.time_embedding(rate.float())

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,  # from BERT-style tokenizer calls; meaningless here
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        if input_ids is None:
            raise ValueError("MdlmModel needs input_ids")
        return_dict = return_dict if return_dict is not None else self.config.use_return_dict
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        length = input_ids.shape[1]
        if length > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {length} exceeds max_position_embeddings {self.config.max_position_embeddings}")
        # The trainer attends to every non-<pad> token; a given mask (1 = keep) takes precedence.
        keep = input_ids != self.config.pad_token_id if attention_mask is None else attention_mask.to(torch.bool)

        c = self.conditioning(input_ids, keep)
        h, relative = self.embedding(input_ids)
        first, last = bucket_range(length, self.config.position_bucket_size, self.config.max_position_embeddings)
        relative = relative[first : last + 1]
        indices = relative_position_indices(
            length, self.config.position_bucket_size, self.config.max_position_embeddings, input_ids.device
        ) - first
        states = [h] if output_hidden_states else None
        for layer in self.layers:
            h = layer(h, relative, indices, keep, c)
            if output_hidden_states:
                states.append(h)
        if not return_dict:
            return tuple(x for x in (h, tuple(states) if states else None) if x is not None)
        return BaseModelOutput(last_hidden_state=h, hidden_states=tuple(states) if states else None)


class MdlmForMaskedLM(MdlmPreTrainedModel):
    """Encoder + tied MLM head: `logits` [B, T, V] aligned with the input (not shifted)."""

    _tied_weights_keys = ["classifier.decoder.weight"]

    def __init__(self, config):
        super().__init__(config)
        self.model = MdlmModel(config)
        self.classifier = Head(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embedding.word_embedding

    def set_input_embeddings(self, value):
        self.model.embedding.word_embedding = value

    def get_output_embeddings(self):
        return self.classifier.decoder

    def set_output_embeddings(self, value):
        self.classifier.decoder = value

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        labels=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return_dict = return_dict if return_dict is not None else self.config.use_return_dict
        encoded = self.model(input_ids, attention_mask, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(encoded.last_hidden_state).float()
        if self.config.suppress_special_logits:
            logits[..., : self.config.num_special_tokens] = torch.finfo(logits.dtype).min
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        if not return_dict:
            return tuple(x for x in (loss, logits, encoded.hidden_states) if x is not None)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=encoded.hidden_states)
