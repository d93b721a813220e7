"""Configuration of an exported MDLM denoiser (LTG-BERT encoder with AdaLN-Zero time conditioning).

Shipped inside every exported model folder and loaded by transformers with
`trust_remote_code=True`, without the training package installed: it imports only transformers.
Field names follow transformers' conventions (num_hidden_layers, ...); `trainer/export.py`
maps the trainer's ModelConfig onto them.
"""

from transformers import PretrainedConfig

TIME_POLICIES = ("mask_fraction", "fixed", "off")


class MdlmConfig(PretrainedConfig):
    model_type = "mdlm_diffusion"

    def __init__(
        self,
        vocab_size: int = 16384,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 2560,
        position_bucket_size: int = 32,
        max_position_embeddings: int = 512,
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        layer_norm_eps: float = 1e-5,
        time_conditioning: bool = True,
        cond_dim: int = 128,
        time_embedding_dim: int = 256,
        time_input_scale: float = 1000.0,
        # No time is passed at evaluation, so the model decides it inside forward:
        # "mask_fraction" = the row's share of <mask> among its real tokens (as in training),
        # "fixed" = eval_fixed_rate for every row, "off" = no modulation at all.
        eval_time_conditioning: str = "mask_fraction",
        eval_fixed_rate: float = 0.15,
        num_special_tokens: int = 16,  # ids below this are special (never real text)
        mask_token_id: int = 4,
        # SUBS: special tokens are never targets, so their logits are pushed to the
        # float32 minimum (log-probabilities of real tokens are unchanged).
        suppress_special_logits: bool = True,
        pad_token_id: int = 3,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        tie_word_embeddings: bool = True,
        **kwargs,
    ):
        if eval_time_conditioning not in TIME_POLICIES:
            raise ValueError(f"eval_time_conditioning must be one of {TIME_POLICIES}, got {eval_time_conditioning!r}")
        if not 0.0 < float(eval_fixed_rate) <= 1.0:
            raise ValueError(f"eval_fixed_rate must be in (0, 1], got {eval_fixed_rate!r}")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.position_bucket_size = position_bucket_size
        self.max_position_embeddings = max_position_embeddings
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.layer_norm_eps = layer_norm_eps
        self.time_conditioning = time_conditioning
        self.cond_dim = cond_dim
        self.time_embedding_dim = time_embedding_dim
        self.time_input_scale = time_input_scale
        self.eval_time_conditioning = eval_time_conditioning
        self.eval_fixed_rate = float(eval_fixed_rate)
        self.num_special_tokens = num_special_tokens
        self.mask_token_id = mask_token_id
        self.suppress_special_logits = suppress_special_logits
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
