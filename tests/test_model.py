"""Tests for trainer/model.py: sizes, attention maths, padding, AdaLN-Zero, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import BLOCK_PROJECT
from trainer.config import PRESETS, ModelConfig
from trainer.model import (
    DiffusionLM,
    bucket_ranges,
    build_model,
    count_parameters,
    log_bucket_position,
    relative_position_indices,
)

VOCAB = 50

# Small enough to be instant, but with a bucket size small enough that sequences of ~20
# tokens reach the logarithmic buckets.
TINY = ModelConfig(
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    intermediate_size=48,
    position_bucket_size=8,
    max_position=64,
    cond_dim=16,
    time_embedding_dim=16,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: extra intra-op threads only add contention on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_model(seed: int = 0, **overrides) -> DiffusionLM:
    torch.manual_seed(seed)
    return build_model(TINY.model_copy(update=overrides), VOCAB)


def perturb_adaln(model: DiffusionLM, seed: int = 1) -> None:
    """Open the AdaLN-Zero gates so the layers (and the conditioning) actually matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.layers:
            for p in layer.adaLN_modulation.parameters():
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))


# --- parameter counts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("conditioned", "expected"),
    [(True, 126_636_800), (False, 119_454_208)],
)
def test_base_parameter_count(conditioned: bool, expected: int) -> None:
    config = PRESETS["base"].model_copy(update={"time_conditioning": conditioned})
    with torch.device("meta"):  # no memory, no init cost
        model = build_model(config, 16384)
    assert count_parameters(model) == expected


def test_base_parameter_breakdown() -> None:
    with torch.device("meta"):
        model = build_model(PRESETS["base"], 16384)
    n = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert model.embedding.word_embedding.weight.numel() == 12_582_912
    assert model.embedding.relative_embedding.numel() == 48_384
    assert n(model.embedding.relative_norm) == 1_536
    layer = model.layers[0]
    assert n(layer.attention) == 2_952_960
    assert n(layer.mlp) == 5_898_240
    assert n(layer.adaLN_modulation) == 594_432
    assert n(model.classifier.dense) == 590_592
    assert model.classifier.decoder.bias.numel() == 16_384
    assert n(model.time_embedding.mlp[0]) == 32_896
    assert n(model.time_embedding.mlp[2]) == 16_512


def test_unconditioned_model_has_no_adaln_parameters() -> None:
    model = make_model(time_conditioning=False)
    assert model.time_embedding is None
    assert not any("adaLN" in name or "time_embedding" in name for name, _ in model.named_parameters())
    # mask_rate is ignored without time conditioning.
    model.eval()
    ids = torch.randint(0, VOCAB, (2, 7))
    assert torch.equal(model(ids), model(ids, mask_rate=torch.tensor([0.3, 0.9])))


# --- shapes and API ------------------------------------------------------------------


def test_shapes_and_head_on_selected_positions() -> None:
    model = make_model().eval()
    ids = torch.randint(0, VOCAB, (3, 11))
    rate = torch.rand(3)
    hidden = model.encode(ids, mask_rate=rate)
    assert hidden.shape == (3, 11, TINY.hidden_size)
    assert model(ids, mask_rate=rate).shape == (3, 11, VOCAB)
    selected = hidden[torch.rand(3, 11) < 0.5]  # [N, D]
    assert model.head(selected).shape == (selected.shape[0], VOCAB)


def test_head_matches_full_logits_at_selected_positions() -> None:
    model = make_model().eval()
    ids = torch.randint(0, VOCAB, (2, 9))
    rate = torch.rand(2)
    hidden = model.encode(ids, mask_rate=rate)
    chosen = torch.zeros(2, 9, dtype=torch.bool)
    chosen[0, 3] = chosen[1, 0] = chosen[1, 8] = True
    assert torch.allclose(model.head(hidden[chosen]), model(ids, mask_rate=rate)[chosen], atol=1e-6)


def test_conditioned_model_requires_mask_rate() -> None:
    model = make_model()
    ids = torch.randint(0, VOCAB, (2, 5))
    with pytest.raises(ValueError):
        model(ids)
    model(ids, condition=False)  # explicit opt-out is fine
    model(ids, mask_rate=torch.tensor(0.5))  # a scalar rate is broadcast over the batch


def test_too_long_sequence_is_rejected() -> None:
    model = make_model()
    with pytest.raises(ValueError):
        model(torch.zeros(1, TINY.max_position + 1, dtype=torch.long), condition=False)


def test_tied_weights_share_storage() -> None:
    model = make_model()
    decoder, embedding = model.classifier.decoder.weight, model.embedding.word_embedding.weight
    assert decoder is embedding
    assert decoder.data_ptr() == embedding.data_ptr()
    assert model.classifier.decoder.bias.shape == (VOCAB,)


def test_initialisation() -> None:
    model = make_model(num_layers=3)
    std = math.sqrt(2.0 / (5.0 * TINY.hidden_size))
    qk = model.layers[0].attention.in_proj_qk
    assert qk.weight.abs().max() <= 2 * std + 1e-6
    assert torch.count_nonzero(qk.bias) == 0
    for i, layer in enumerate(model.layers):
        assert torch.count_nonzero(layer.adaLN_modulation.weight) == 0
        assert torch.count_nonzero(layer.adaLN_modulation.bias) == 0
        # Depth-scaled FFN: the cut-off shrinks with the layer index.
        bound = 2 * std * math.sqrt(1.0 / (2.0 * (i + 1)))
        assert layer.mlp.up.weight.abs().max() <= bound + 1e-6
        assert layer.mlp.down.weight.abs().max() <= bound + 1e-6
    assert "position_indices" not in model.state_dict()  # non-persistent buffer


# --- relative position buckets -------------------------------------------------------


@pytest.mark.parametrize(("bucket_size", "max_position"), [(32, 512), (8, 64), (2, 16), (33, 128), (32, 8)])
def test_log_bucket_position(bucket_size: int, max_position: int) -> None:
    distance = torch.arange(0, 2 * max_position + 1)
    buckets = log_bucket_position(distance, bucket_size, max_position)
    mid = bucket_size // 2
    exact = distance <= mid
    assert torch.equal(buckets[exact], distance[exact])  # identity inside +-B/2
    assert torch.all(buckets[1:] >= buckets[:-1])  # monotone in distance
    assert torch.all(buckets.abs() <= bucket_size - 1)  # fits the 2B-1-row table
    assert torch.equal(log_bucket_position(-distance, bucket_size, max_position), -buckets)  # odd function
    if max_position - 1 > mid:
        assert buckets[max_position - 1] == 2 * mid - 1  # the farthest distance uses the last bucket


def test_ltg_bert_reference_buckets() -> None:
    # A few values of LTG-BERT's make_log_bucket_position(bucket 32, max 512), worked by hand:
    # ceil(log(d / 16) / log(511 / 16) * 15) + 16.
    distance = torch.tensor([16, 17, 20, 32, 100, 511, 1000])
    expected = [math.ceil(math.log(min(d, 511) / 16) / math.log(511 / 16) * 15) + 16 for d in distance.tolist()]
    expected[0] = 16
    assert log_bucket_position(distance, 32, 512).tolist() == expected


# --- attention: SDPA path against explicit maths -------------------------------------


def reference_attention(attention, x, relative, indices, key_mask):
    """LTG-BERT's formulation written out: materialise [T, T, 2D] positions, explicit softmax."""
    batch, length, d = x.shape
    heads, hd = attention.num_heads, attention.head_dim
    query, key = attention.in_proj_qk(x).chunk(2, dim=-1)
    value, gate = attention.in_proj_vg(x).chunk(2, dim=-1)
    pos = F.embedding(indices, attention.in_proj_qk(relative))  # [T, T, 2D]
    q_pos, k_pos = (t.reshape(length, length, heads, hd) for t in pos.chunk(2, dim=-1))
    query, key, value = (t.reshape(batch, length, heads, hd).transpose(1, 2) for t in (query, key, value))
    scale = 1.0 / math.sqrt(3 * hd)
    scores = query @ key.transpose(-1, -2) * scale
    scores = scores + torch.einsum("bhqd,qkhd->bhqk", query, k_pos) * scale
    scores = scores + torch.einsum("bhkd,qkhd->bhqk", key, q_pos) * scale
    scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    context = (probs @ value).transpose(1, 2).reshape(batch, length, d)
    context = context * F.gelu(gate)
    return attention.out_proj(attention.out_norm(context))


def test_sdpa_attention_matches_explicit_reference() -> None:
    torch.manual_seed(0)
    model = make_model().eval()
    attention = model.layers[0].attention
    batch, length = 3, 20  # beyond B/2 = 4, so log buckets are exercised
    x = torch.randn(batch, length, TINY.hidden_size)
    relative = torch.randn(2 * TINY.position_bucket_size - 1, TINY.hidden_size, requires_grad=True)
    key_mask = torch.ones(batch, length, dtype=torch.bool)
    key_mask[1, 13:] = False
    key_mask[2, 5:] = False
    indices = model.position_indices[:length, :length]

    ours = attention(x, relative, indices, key_mask)
    ref = reference_attention(attention, x, relative, indices, key_mask)
    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-4)

    # The gradients (through the position bias handed to SDPA too) must agree as well.
    weights = torch.randn_like(ours)
    grads_ours = torch.autograd.grad((ours * weights).sum(), [relative, *attention.parameters()])
    grads_ref = torch.autograd.grad((ref * weights).sum(), [relative, *attention.parameters()])
    for a, b in zip(grads_ours, grads_ref):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("bf16", [False, True])
def test_cpu_training_attention_matches_sdpa(bf16: bool) -> None:
    """Training on a CPU with attention dropout takes `_explicit_attention` instead of SDPA; it
    computes what SDPA's math path does there (float32 scores and softmax under bf16 autocast
    too), dropout masks included: the same seed draws the same masks."""
    torch.manual_seed(0)
    model = make_model(attention_dropout=0.3).train()
    perturb_adaln(model)
    attention = model.layers[1].attention
    batch, length = 3, 20
    x = torch.randn(batch, length, TINY.hidden_size, requires_grad=True)
    relative = torch.randn(2 * TINY.position_bucket_size - 1, TINY.hidden_size, requires_grad=True)
    key_mask = torch.ones(batch, length, dtype=torch.bool)
    key_mask[1, 13:] = False
    key_mask[2, 1:] = False  # one real key only
    indices = model.position_indices[:length, :length]
    inputs = [x, relative, *attention.in_proj_qk.parameters(), *attention.in_proj_vg.parameters()]

    def run(path, mask):
        torch.manual_seed(7)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            value = attention.in_proj_vg(x).chunk(2, dim=-1)[0]
            out = path(x, value, relative, indices, mask)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        return out.float(), torch.autograd.grad((out.float() * weights).sum(), inputs)

    for mask in (key_mask, None):
        ours, grads_ours = run(attention._explicit_attention, mask)
        ref, grads_ref = run(attention._sdpa_attention, mask)
        attention.eval()
        plain, _ = run(attention._sdpa_attention, mask)
        attention.train()
        assert not torch.allclose(ours, plain, atol=0.1)  # dropout acted (and the masks agree, below)
        # bf16: the position bias is rounded to bf16 in both, scaled before rounding here and after there.
        atol, rtol = (2e-2, 2e-2) if bf16 else (1e-5, 1e-4)
        assert torch.allclose(ours, ref, atol=atol, rtol=rtol)
        for a, b in zip(grads_ours, grads_ref):
            assert torch.allclose(a, b, atol=atol * b.abs().max().item(), rtol=rtol)


def test_an_all_true_attention_mask_is_no_mask() -> None:
    model = make_model().train()
    perturb_adaln(model)
    ids = torch.randint(0, VOCAB, (2, 12))
    rate = torch.rand(2)
    torch.manual_seed(3)
    masked = model(ids, attention_mask=torch.ones(2, 12, dtype=torch.bool), mask_rate=rate)
    torch.manual_seed(3)
    assert torch.equal(masked, model(ids, mask_rate=rate))


@pytest.mark.parametrize("bucket_size,max_position", [(32, 512), (8, 64), (4, 16)])
def test_bucket_ranges_are_the_rows_a_length_uses(bucket_size: int, max_position: int) -> None:
    full = relative_position_indices(bucket_size, max_position)
    ranges = bucket_ranges(bucket_size, max_position)
    assert len(ranges) == max_position
    for length in range(1, max_position + 1):
        used = full[:length, :length]
        assert ranges[length - 1] == (int(used.min()), int(used.max())), length
    assert all(type(v) is int for pair in ranges for v in pair)  # plain ints: constants under compile


def test_bucket_ranges_of_a_model_built_on_the_meta_device() -> None:
    """The export checks weights against a network built on the meta device: the per-length
    table is still real ints there."""
    with torch.device("meta"):
        model = build_model(TINY, VOCAB)
    assert model.bucket_ranges == bucket_ranges(TINY.position_bucket_size, TINY.max_position)


@pytest.mark.parametrize("length", [3, 7, 20])
def test_encode_with_the_table_rows_in_use_equals_the_whole_table(length: int) -> None:
    """encode() hands the layers only the table rows the length uses; the whole table with
    unshifted indices must give the same hidden states."""
    torch.manual_seed(1)
    model = make_model().eval()
    ids = torch.randint(0, VOCAB, (2, length))
    keep = torch.ones_like(ids, dtype=torch.bool)
    keep[1, length // 2 + 1 :] = False  # padding in one row
    rate = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        ours = model.encode(ids, keep, rate)
        h, relative = model.embedding(ids)
        c = model.time_embedding(rate)
        for layer in model.layers:
            h = layer(h, relative, model.position_indices[:length, :length], keep, c)
    assert torch.allclose(ours, h, atol=1e-5, rtol=1e-4)


# --- padding invariance --------------------------------------------------------------


@pytest.mark.parametrize("conditioned", [True, False])
def test_padding_does_not_change_real_positions(conditioned: bool) -> None:
    model = make_model(time_conditioning=conditioned).eval()
    if conditioned:
        perturb_adaln(model)
    short, long = 10, 18
    ids = torch.randint(0, VOCAB, (2, long))
    rate = torch.tensor([0.3, 0.7])
    alone = model(ids[:1, :short], mask_rate=rate[:1])
    mask = torch.ones(2, long, dtype=torch.bool)
    mask[0, short:] = False  # row 0 padded with arbitrary ids that must not matter
    batched = model(ids, attention_mask=mask, mask_rate=rate)
    assert torch.allclose(alone[0], batched[0, :short], atol=1e-5, rtol=1e-5)
    # And the padded ids really are ignored.
    ids2 = ids.clone()
    ids2[0, short:] = torch.randint(0, VOCAB, (long - short,))
    assert torch.allclose(batched[0, :short], model(ids2, attention_mask=mask, mask_rate=rate)[0, :short], atol=1e-6)
    assert torch.isfinite(batched).all()


def test_fully_padded_row_gives_no_nans() -> None:
    model = make_model().eval()
    perturb_adaln(model)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1] = False
    out = model(torch.randint(0, VOCAB, (2, 6)), attention_mask=mask, mask_rate=torch.rand(2))
    assert torch.isfinite(out).all()


# --- AdaLN-Zero ----------------------------------------------------------------------


def test_adaln_zero_init_makes_layers_identity() -> None:
    model = make_model().eval()
    ids = torch.randint(0, VOCAB, (2, 12))
    low = model(ids, mask_rate=torch.tensor([0.05, 0.1]))
    high = model(ids, mask_rate=torch.tensor([0.9, 0.95]))
    # Gates are 0 at init: the output cannot depend on the rate ...
    assert torch.equal(low, high)
    # ... because every layer is the identity: logits are the head applied to the embeddings.
    embedded, _ = model.embedding(ids)
    assert torch.allclose(low, model.head(embedded), atol=1e-6)
    # condition=False opens every gate (1, no modulation), so it is a different function.
    assert not torch.allclose(low, model(ids, condition=False), atol=1e-4)


def test_perturbed_adaln_depends_on_mask_rate() -> None:
    model = make_model().eval()
    perturb_adaln(model)
    ids = torch.randint(0, VOCAB, (2, 12))
    low = model(ids, mask_rate=torch.tensor([0.05, 0.1]))
    high = model(ids, mask_rate=torch.tensor([0.9, 0.95]))
    assert not torch.allclose(low, high, atol=1e-4)
    # condition=False bypasses the modulation: it ignores the rate and the adaLN weights.
    plain = model(ids, condition=False)
    with torch.no_grad():
        for layer in model.layers:
            layer.adaLN_modulation.weight.mul_(3.0)
    assert torch.equal(plain, model(ids, condition=False))


def test_condition_false_equals_unconditioned_model() -> None:
    conditioned = make_model(seed=3, time_conditioning=True).eval()
    plain = make_model(seed=3, time_conditioning=False).eval()
    plain.load_state_dict(conditioned.state_dict(), strict=False)
    ids = torch.randint(0, VOCAB, (2, 9))
    assert torch.allclose(conditioned(ids, condition=False), plain(ids), atol=1e-6)


# --- gradients and mixed precision ---------------------------------------------------


def test_every_parameter_gets_a_gradient() -> None:
    model = make_model().train()
    ids = torch.randint(0, VOCAB, (4, 16))
    mask = torch.ones(4, 16, dtype=torch.bool)
    mask[0, 10:] = False
    rate = torch.rand(4)

    # At init (gates closed) every parameter is still in the graph, which is what DDP needs.
    model(ids, attention_mask=mask, mask_rate=rate).logsumexp(-1).sum().backward()
    assert all(p.grad is not None for p in model.parameters())

    # With open gates every gradient is actually non-zero.
    model.zero_grad(set_to_none=True)
    perturb_adaln(model)
    model(ids, attention_mask=mask, mask_rate=rate).logsumexp(-1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


def test_bf16_autocast_cpu() -> None:
    model = make_model().train()
    perturb_adaln(model)
    ids = torch.randint(0, VOCAB, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    rate = torch.rand(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(ids, attention_mask=mask, mask_rate=rate)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    logits.float().logsumexp(-1).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    model.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(ids, attention_mask=mask, mask_rate=rate).float()
    full = model(ids, attention_mask=mask, mask_rate=rate)
    assert (low - full).abs().max() < 0.1 * full.abs().max()


# --- self-contained: the Hugging Face export ships this file verbatim ----------------------

STANDALONE = BLOCK_PROJECT + r"""
import json, os
from types import SimpleNamespace

folder, config, out, project = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
assert project not in [os.path.realpath(p) for p in sys.path] and "" not in sys.path, sys.path
sys.path.insert(0, folder)
import torch
import copied_model

torch.manual_seed(0)
model = copied_model.build_model(SimpleNamespace(**config), 50).eval()
ids = torch.arange(2 * 20).reshape(2, 20) % 50
keep = torch.ones(2, 20, dtype=torch.bool)
keep[1, 15:] = False
with torch.no_grad():
    logits = model(ids, keep, torch.tensor([0.2, 0.7]))
torch.save({"state": model.state_dict(), "logits": logits}, out)
"""


def test_model_file_imports_nothing_from_the_project(tmp_path) -> None:
    """trainer/model.py, copied alone to a folder, imports and runs with the project unreachable
    (not on sys.path, its packages blocked), from a plain attribute namespace instead of
    ModelConfig, and builds the very same network."""
    import ast
    import json
    import subprocess
    import sys
    from pathlib import Path

    import trainer.model

    source = Path(trainer.model.__file__)
    project = Path(__file__).resolve().parents[1]
    # Every import anywhere in the file (inside `if TYPE_CHECKING:` too: transformers' remote-code
    # check reads those) is the standard library or torch.
    tree = ast.parse(source.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert not any(isinstance(node, ast.ImportFrom) and node.level > 0 for node in ast.walk(tree))
    assert imported - set(sys.stdlib_module_names) == {"torch"}, imported

    (tmp_path / "copied_model.py").write_bytes(source.read_bytes())
    out = tmp_path / "out.pt"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", STANDALONE, str(tmp_path), json.dumps(TINY.model_dump()), str(out), str(project)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    standalone = torch.load(out)

    model = make_model(seed=0).eval()
    state = model.state_dict()
    assert list(standalone["state"]) == list(state)
    assert all(torch.equal(standalone["state"][k], v) for k, v in state.items())
    ids = torch.arange(2 * 20).reshape(2, 20) % VOCAB
    keep = torch.ones(2, 20, dtype=torch.bool)
    keep[1, 15:] = False
    with torch.no_grad():
        assert torch.equal(model(ids, keep, torch.tensor([0.2, 0.7])), standalone["logits"])
