"""An exported MDLM denoiser for transformers: a thin wrapper around the trainer's own network.

Shipped inside every exported model folder and loaded with `trust_remote_code=True`, without the
training package installed. The network is not re-implemented here: `mdlm_model.py` beside this
file is the trainer's `trainer/model.py`, copied byte for byte by the export, and transformers'
remote-code loader copies it along because this file imports it relatively. Its `DiffusionLM`
lives under `model.network.` in both classes below (`model.network.<the trainer's parameter name>`),
so an exported state dict loads 1:1.

What this wrapper adds is only what the evaluation pipeline cannot supply or expects:
- No time is passed. `config.eval_time_conditioning` decides the rate inside `forward`:
  "mask_fraction" (the row's <mask> count over its real tokens, counting the masks: exactly the
  trainer's `evaluate.py`), "fixed" (`config.eval_fixed_rate`), or "off" (no modulation).
- No attention mask may be passed; then, as in the trainer, every non-<pad> token is attended.
- `token_type_ids` and other tokenizer outputs are accepted and ignored.
- Special-token logits are set to the float32 minimum (SUBS: the trainer uses -inf; both give
  the same log-probabilities for real tokens, the finite value keeps p * log p free of NaNs).
- transformers' config names, output classes, weight tying and loading.
"""

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput

from .configuration_mdlm import MdlmConfig
from .mdlm_model import LAYER_NORM_EPS, DiffusionLM


def network_config(config):
    """transformers' field names -> the attributes the trainer's network reads (its ModelConfig)."""
    if not math.isclose(config.layer_norm_eps, LAYER_NORM_EPS):
        raise ValueError(f"layer_norm_eps {config.layer_norm_eps} differs from the network's fixed {LAYER_NORM_EPS}")
    return SimpleNamespace(
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        position_bucket_size=config.position_bucket_size,
        max_position=config.max_position_embeddings,
        dropout=config.hidden_dropout_prob,
        attention_dropout=config.attention_probs_dropout_prob,
        time_conditioning=config.time_conditioning,
        cond_dim=config.cond_dim,
        time_embedding_dim=config.time_embedding_dim,
        time_input_scale=config.time_input_scale,
    )


class MdlmPreTrainedModel(PreTrainedModel):
    config_class = MdlmConfig
    base_model_prefix = "model"
    _no_split_modules = ["Block"]

    @torch.no_grad()
    def _init_weights(self, module):
        # Weights a checkpoint does not provide (e.g. building from a config) get the trainer's
        # init; transformers visits submodules first, so only the whole network acts here.
        if isinstance(module, DiffusionLM):
            module._init_weights()

    def get_input_embeddings(self):
        return self.base_model.network.embedding.word_embedding

    def set_input_embeddings(self, value):
        self.base_model.network.embedding.word_embedding = value

    # The network's MLM head is tied to its word embedding. Both classes hold it, so both declare
    # the tie (after loading, transformers re-ties the matrix that is stored once).
    def get_output_embeddings(self):
        return self.base_model.network.classifier.decoder

    def set_output_embeddings(self, value):
        self.base_model.network.classifier.decoder = value


class MdlmModel(MdlmPreTrainedModel):
    """The encoder: [B, T] ids -> `last_hidden_state` [B, T, hidden_size] (no final norm, as the trainer).

    Holds the whole network (its head included, unused here), so it loads the export's single
    weights file with the same names as `MdlmForMaskedLM`.
    """

    _tied_weights_keys = ["network.classifier.decoder.weight"]

    def __init__(self, config):
        super().__init__(config)
        self.network = DiffusionLM(network_config(config), config.vocab_size)
        self.post_init()

    def time_input(self, input_ids, keep):
        """(mask_rate, condition) for the network under the recorded policy."""
        policy = self.config.eval_time_conditioning
        if not self.config.time_conditioning or policy == "off":
            return None, False
        if policy == "fixed":
            return torch.full((input_ids.shape[0],), self.config.eval_fixed_rate, device=input_ids.device), True
        # The trainer's fraction: masked / maskable, where maskable (real tokens before masking)
        # = the masks plus the real tokens still visible. Specials and padding count as neither.
        masked = ((input_ids == self.config.mask_token_id) & keep).sum(1)
        visible = ((input_ids >= self.config.num_special_tokens) & keep).sum(1)
        return masked.float() / (masked + visible).clamp_min(1).float(), True

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
        # The trainer attends to every non-<pad> token; a given mask (1 = keep) takes precedence.
        keep = input_ids != self.config.pad_token_id if attention_mask is None else attention_mask.to(torch.bool)
        mask_rate, condition = self.time_input(input_ids, keep)
        # No padding at all: attend everywhere without a mask (a [B, H, T, T] pass per layer
        # saved); decided on a CPU only, where reading the mask costs no device sync.
        attend = None if keep.device.type == "cpu" and bool(keep.all()) else keep

        states = []
        hooks = []
        if output_hidden_states:
            # The network's own encode() runs; hooks only record the embedding and each layer's output.
            hooks.append(self.network.embedding.register_forward_hook(lambda m, i, out: states.append(out[0])))
            hooks += [layer.register_forward_hook(lambda m, i, out: states.append(out)) for layer in self.network.layers]
        try:
            h = self.network.encode(input_ids, attend, mask_rate, condition=condition)
        finally:
            for hook in hooks:
                hook.remove()
        hidden_states = tuple(states) if output_hidden_states else None
        if not return_dict:
            return tuple(x for x in (h, hidden_states) if x is not None)
        return BaseModelOutput(last_hidden_state=h, hidden_states=hidden_states)


class MdlmForMaskedLM(MdlmPreTrainedModel):
    """Encoder + tied MLM head: `logits` [B, T, V] aligned with the input (not shifted)."""

    _tied_weights_keys = ["model.network.classifier.decoder.weight"]

    def __init__(self, config):
        super().__init__(config)
        self.model = MdlmModel(config)
        self.post_init()

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
        logits = self.model.network.head(encoded.last_hidden_state).float()
        if self.config.suppress_special_logits:
            logits[..., : self.config.num_special_tokens] = torch.finfo(logits.dtype).min
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        if not return_dict:
            return tuple(x for x in (loss, logits, encoded.hidden_states) if x is not None)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=encoded.hidden_states)
