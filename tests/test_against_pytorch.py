"""Every op, the whole model, Adam and training, checked against PyTorch in float64.

PyTorch's autograd is an independent reference: each test runs the same numbers
through our hand-written backward pass and through torch, then compares every output
and every input or parameter gradient. Skipped when torch is not installed.
"""

import numpy
import pytest

torch = pytest.importorskip("torch")

from torch.nn import functional as F

from nptransformer import Adam, NoamSchedule, Transformer, TransformerConfig
from nptransformer.interop import (
    from_torch,
    parameter_map,
    to_torch,
    torch_gradients,
)
from nptransformer.ops import (
    attention_backward,
    attention_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    embedding_backward,
    embedding_forward,
    layernorm_backward,
    layernorm_forward,
    linear_backward,
    linear_forward,
    multi_head_attention_backward,
    multi_head_attention_forward,
    relu_backward,
    relu_forward,
    softmax_backward,
    softmax_forward,
)
from nptransformer.tasks import PAD, data_streams, get_task
from nptransformer.train import train_step

# In float64 the two sides differ by round-off only: the measured relative errors
# are below 1e-14, for single ops and for every gradient of the whole model alike.
TOLERANCE = 1e-9
# A tensor whose true gradient is zero (attention's key bias bk) comes out as
# round-off on both sides: up to 2e-15 in the multi-head attention test, where the
# other gradients are about 10. Below the floor the error is absolute, at most
# TOLERANCE * FLOOR = 1e-12, still far below any gradient a bug would leave.
FLOOR = 1e-3


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run PyTorch on one thread while these tests run, then restore the count.

    The tensors here are tiny, and on a busy machine PyTorch's worker threads spend
    far more time waiting for each other than computing.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def as_numpy(value):
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return numpy.asarray(value)


def assert_close(name, mine, theirs, tolerance=TOLERANCE, floor=FLOOR):
    """Assert max |mine - theirs| / max(max |theirs|, floor) <= tolerance.

    The message names the tensor, its shape, the largest error and where it is.
    """
    mine, theirs = as_numpy(mine), as_numpy(theirs)
    assert mine.shape == theirs.shape, (
        f"{name}: shape {mine.shape} (mine) vs {theirs.shape} (PyTorch)"
    )
    if mine.size == 0:
        return
    error = numpy.abs(mine.astype(numpy.float64) - theirs.astype(numpy.float64))
    index = tuple(int(i) for i in numpy.unravel_index(error.argmax(), error.shape))
    scale = max(float(numpy.abs(theirs).max()), floor)
    relative = error[index] / scale
    assert relative <= tolerance, (
        f"{name} {mine.shape}: largest error {error[index]:.3e} at index {index}, "
        f"mine {float(mine[index])!r} vs PyTorch {float(theirs[index])!r}; "
        f"relative to max(scale {scale:.3e}, floor) that is {relative:.3e} "
        f"> {tolerance:.0e}"
    )


def leaf(array):
    """A float64 torch tensor with the values of `array` that collects a gradient."""
    return torch.tensor(array, dtype=torch.float64, requires_grad=True)


# ---- ops ---------------------------------------------------------------------------


@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_f_linear(rng, with_bias):
    x = rng.standard_normal((2, 3, 5))
    W = rng.standard_normal((5, 4))
    b = rng.standard_normal(4) if with_bias else None
    dout = rng.standard_normal((2, 3, 4))

    out, cache = linear_forward(x, W, b)
    dx, dW, db = linear_backward(dout, cache)

    x_t, weight_t = leaf(x), leaf(W.T)  # nn.Linear stores (d_out, d_in)
    bias_t = leaf(b) if with_bias else None
    out_t = F.linear(x_t, weight_t, bias_t)
    out_t.backward(torch.tensor(dout))

    assert_close("linear out", out, out_t)
    assert_close("linear dx", dx, x_t.grad)
    assert_close("linear dW", dW, weight_t.grad.T)
    if with_bias:
        assert_close("linear db", db, bias_t.grad)
    else:
        assert db is None


def test_relu_matches_torch_relu(rng):
    x = rng.standard_normal((4, 6))
    x[0, :3] = 0.0  # PyTorch also takes the subgradient at 0 as 0
    dout = rng.standard_normal((4, 6))

    out, cache = relu_forward(x)
    dx = relu_backward(dout, cache)

    x_t = leaf(x)
    out_t = torch.relu(x_t)
    out_t.backward(torch.tensor(dout))

    assert_close("relu out", out, out_t)
    assert_close("relu dx", dx, x_t.grad)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_matches_torch_softmax(rng, axis):
    x = 3.0 * rng.standard_normal((4, 5, 6))
    dout = rng.standard_normal((4, 5, 6))

    out, cache = softmax_forward(x, axis=axis)
    dx = softmax_backward(dout, cache)

    x_t = leaf(x)
    out_t = torch.softmax(x_t, dim=axis)
    out_t.backward(torch.tensor(dout))

    assert_close(f"softmax(axis={axis}) out", out, out_t)
    assert_close(f"softmax(axis={axis}) dx", dx, x_t.grad)


def test_layernorm_matches_f_layer_norm(rng):
    x = 2.0 + 3.0 * rng.standard_normal((3, 4, 8))
    gamma = rng.standard_normal(8)
    beta = rng.standard_normal(8)
    dout = rng.standard_normal((3, 4, 8))

    out, cache = layernorm_forward(x, gamma, beta, eps=1e-5)
    dx, dgamma, dbeta = layernorm_backward(dout, cache)

    x_t, gamma_t, beta_t = leaf(x), leaf(gamma), leaf(beta)
    out_t = F.layer_norm(x_t, (8,), gamma_t, beta_t, eps=1e-5)
    out_t.backward(torch.tensor(dout))

    assert_close("layernorm out", out, out_t)
    assert_close("layernorm dx", dx, x_t.grad)
    assert_close("layernorm dgamma", dgamma, gamma_t.grad)
    assert_close("layernorm dbeta", dbeta, beta_t.grad)


def test_embedding_matches_f_embedding_repeated_ids(rng):
    ids = numpy.array([[1, 3, 3, 0, 1, 3], [4, 4, 1, 0, 0, 3]])
    assert numpy.bincount(ids.ravel()).max() > 1
    W = rng.standard_normal((6, 3))  # id 2 and id 5 never occur: zero gradient rows
    dout = rng.standard_normal((2, 6, 3))

    out, cache = embedding_forward(ids, W)
    dW = embedding_backward(dout, cache)

    weight_t = leaf(W)
    out_t = F.embedding(torch.tensor(ids), weight_t)
    out_t.backward(torch.tensor(dout))

    assert_close("embedding out", out, out_t)
    assert_close("embedding dW", dW, weight_t.grad)


def _attention_masks(rng, B, H, Tq, Tk):
    """Boolean keep-masks (True = may attend) of several broadcast shapes.

    None of them leaves a query row without a key: such rows have their own test.
    """
    lengths = numpy.array([Tk, 2])
    key_padding = numpy.arange(Tk) < lengths[:, None]  # (B, Tk)
    causal = numpy.tril(numpy.ones((Tq, Tk), dtype=bool), k=Tk - Tq)
    full = rng.random((B, H, Tq, Tk)) < 0.5
    full[..., 0] = True
    per_head = rng.random((H, 1, Tk)) < 0.5
    per_head[..., 0] = True
    return {
        "none": None,
        "(H, 1, Tk)": per_head,
        "(Tq, Tk)": causal,
        "(B, 1, 1, Tk)": key_padding[:, None, None, :],
        "(B, 1, Tq, Tk)": key_padding[:, None, None, :] & causal,
        "(B, H, Tq, Tk)": full,
    }


@pytest.mark.parametrize(
    "mask_shape",
    [
        "none",
        "(H, 1, Tk)",
        "(Tq, Tk)",
        "(B, 1, 1, Tk)",
        "(B, 1, Tq, Tk)",
        "(B, H, Tq, Tk)",
    ],
)
def test_attention_matches_sdpa(rng, mask_shape):
    B, H, Tq, Tk, Dk, Dv = 2, 3, 4, 6, 5, 7
    q = rng.standard_normal((B, H, Tq, Dk))
    k = rng.standard_normal((B, H, Tk, Dk))
    v = rng.standard_normal((B, H, Tk, Dv))
    mask = _attention_masks(rng, B, H, Tq, Tk)[mask_shape]
    dout = rng.standard_normal((B, H, Tq, Dv))

    out, cache = attention_forward(q, k, v, mask)
    dq, dk, dv = attention_backward(dout, cache)

    # A boolean attn_mask means True = may attend in scaled_dot_product_attention too.
    q_t, k_t, v_t = leaf(q), leaf(k), leaf(v)
    mask_t = None if mask is None else torch.tensor(mask)
    out_t = F.scaled_dot_product_attention(q_t, k_t, v_t, attn_mask=mask_t)
    out_t.backward(torch.tensor(dout))

    assert_close(f"attention {mask_shape} out", out, out_t)
    assert_close(f"attention {mask_shape} dq", dq, q_t.grad)
    assert_close(f"attention {mask_shape} dk", dk, k_t.grad)
    assert_close(f"attention {mask_shape} dv", dv, v_t.grad)


def test_attention_fully_masked_row_is_zero(rng):
    """A query row with no key to attend to gives a zero row and no NaN.

    PyTorch's result on such a row depends on the kernel (its fused eval-mode kernels
    give NaN), so the other rows are compared with PyTorch run without the empty row.
    That also shows that the empty row adds nothing to dk and dv.
    """
    H, Tq, Tk, Dk = 2, 4, 5, 3
    empty_row = 2
    q = rng.standard_normal((H, Tq, Dk))
    k = rng.standard_normal((H, Tk, Dk))
    v = rng.standard_normal((H, Tk, Dk))
    mask = rng.random((Tq, Tk)) < 0.6
    mask[:, 0] = True
    mask[empty_row] = False
    dout = rng.standard_normal((H, Tq, Dk))

    out, cache = attention_forward(q, k, v, mask)
    dq, dk, dv = attention_backward(dout, cache)

    assert numpy.isfinite(out).all()
    assert numpy.isfinite(dq).all()
    assert numpy.isfinite(dk).all()
    assert numpy.isfinite(dv).all()
    assert (out[:, empty_row] == 0).all()
    assert (dq[:, empty_row] == 0).all()

    other_rows = [row for row in range(Tq) if row != empty_row]
    q_t, k_t, v_t = leaf(q[:, other_rows]), leaf(k), leaf(v)
    out_t = F.scaled_dot_product_attention(
        q_t, k_t, v_t, attn_mask=torch.tensor(mask[other_rows])
    )
    out_t.backward(torch.tensor(dout[:, other_rows]))

    assert_close("attention other rows out", out[:, other_rows], out_t)
    assert_close("attention other rows dq", dq[:, other_rows], q_t.grad)
    assert_close("attention dk", dk, k_t.grad)
    assert_close("attention dv", dv, v_t.grad)


@pytest.mark.parametrize("kind", ["self", "cross"])
def test_multi_head_attention_matches_torch(rng, kind):
    B, Tq, D, H = 2, 5, 12, 3
    Tk = Tq if kind == "self" else 4
    x_q = rng.standard_normal((B, Tq, D))
    x_kv = x_q if kind == "self" else rng.standard_normal((B, Tk, D))
    params = {}
    for name in ("q", "k", "v", "o"):
        params[f"W{name}"] = rng.standard_normal((D, D)) / numpy.sqrt(D)
        params[f"b{name}"] = rng.standard_normal(D)
    lengths = numpy.array([Tk, 2])
    key_padding = numpy.arange(Tk) >= lengths[:, None]  # (B, Tk), True = padding
    keep = ~key_padding[:, None, None, :]  # (B, 1, 1, Tk), True = may attend
    future = None
    if kind == "self":
        future = numpy.triu(numpy.ones((Tq, Tk), dtype=bool), k=1)
        keep = keep & ~future
    dout = rng.standard_normal((B, Tq, D))

    out, cache = multi_head_attention_forward(x_q, x_kv, params, H, keep)
    dx_q, dx_kv, dparams = multi_head_attention_backward(dout, cache)

    # PyTorch packs Wqᵀ, Wkᵀ, Wvᵀ into one (3D, D) weight and takes (T, B, D) inputs.
    # Its masks mean True = may NOT attend.
    in_weight = leaf(numpy.concatenate([params[f"W{n}"].T for n in "qkv"]))
    in_bias = leaf(numpy.concatenate([params[f"b{n}"] for n in "qkv"]))
    out_weight, out_bias = leaf(params["Wo"].T), leaf(params["bo"])
    x_q_t = leaf(x_q)
    x_kv_t = x_q_t if kind == "self" else leaf(x_kv)
    out_t, weights_t = F.multi_head_attention_forward(
        x_q_t.transpose(0, 1),
        x_kv_t.transpose(0, 1),
        x_kv_t.transpose(0, 1),
        D,
        H,
        in_weight,
        in_bias,
        None,
        None,
        False,
        0.0,
        out_weight,
        out_bias,
        training=False,
        key_padding_mask=torch.tensor(key_padding),
        need_weights=True,
        attn_mask=None if future is None else torch.tensor(future),
        average_attn_weights=False,
    )
    out_t = out_t.transpose(0, 1)  # (B, Tq, D)
    out_t.backward(torch.tensor(dout))

    assert_close(f"{kind}-attention out", out, out_t)
    assert_close(f"{kind}-attention weights", cache["weights"], weights_t)
    if kind == "self":
        assert_close("self-attention dx", dx_q + dx_kv, x_q_t.grad)
    else:
        assert_close("cross-attention dx_q", dx_q, x_q_t.grad)
        assert_close("cross-attention dx_kv", dx_kv, x_kv_t.grad)
    for block, name in enumerate("qkv"):
        rows = slice(block * D, (block + 1) * D)
        assert_close(f"dW{name}", dparams[f"W{name}"], in_weight.grad[rows].T)
        assert_close(f"db{name}", dparams[f"b{name}"], in_bias.grad[rows])
    assert_close("dWo", dparams["Wo"], out_weight.grad.T)
    assert_close("dbo", dparams["bo"], out_bias.grad)


@pytest.mark.parametrize(
    "label_smoothing, ignore_index", [(0.0, None), (0.1, None), (0.0, 0), (0.2, 0)]
)
def test_cross_entropy_matches_f_cross_entropy(rng, label_smoothing, ignore_index):
    V = 7
    logits = 2.0 * rng.standard_normal((3, 5, V))
    targets = rng.integers(0, V, size=(3, 5))
    targets[0, 3:] = 0
    targets[2, 1:] = 0
    dloss = 0.7  # an upstream gradient other than 1 checks the scaling

    loss, cache = cross_entropy_forward(logits, targets, label_smoothing, ignore_index)
    dlogits = cross_entropy_backward(cache, dloss)

    logits_t = leaf(logits)
    loss_t = F.cross_entropy(
        logits_t.reshape(-1, V),
        torch.tensor(targets.reshape(-1)),
        ignore_index=-100 if ignore_index is None else ignore_index,
        label_smoothing=label_smoothing,
    )
    loss_t.backward(torch.tensor(dloss, dtype=torch.float64))

    assert_close("cross-entropy loss", loss, loss_t)
    assert_close("cross-entropy dlogits", dlogits, logits_t.grad)


# ---- the whole model through interop -----------------------------------------------

MODEL_FLAGS = {
    "post-LN": {},
    "pre-LN": {"norm_first": True},
    "tied": {"tie_embeddings": True},
    "shared": {"share_embeddings": True},
    "shared tied pre-LN": {
        "share_embeddings": True,
        "tie_embeddings": True,
        "norm_first": True,
    },
}


def tiny_config(**flags):
    return TransformerConfig(
        src_vocab_size=11,
        tgt_vocab_size=11,
        d_model=16,
        num_heads=4,
        num_encoder_layers=2,
        num_decoder_layers=2,
        d_ff=32,
        dropout=0.0,
        max_len=16,
        pad_id=PAD,
        dtype="float64",
        **flags,
    )


def perturbed_model(config, seed=0):
    """A model whose LayerNorm gains and biases are not the ones and zeros of init,
    so that every parameter matters to the outputs."""
    model = Transformer(config, seed=seed)
    rng = numpy.random.default_rng(seed + 100)
    for param in model.parameters().values():
        param += 0.1 * rng.standard_normal(param.shape)
    return model


def padded_batch(batch_size=5, seed=1):
    """A reverse-task batch whose source and target rows have different lengths."""
    batch = get_task("reverse", num_symbols=8, max_length=6).sample_batch(
        numpy.random.default_rng(seed), batch_size
    )
    assert (batch.src == PAD).any()
    assert (batch.tgt_in == PAD).any()
    return batch


@pytest.mark.parametrize("flags", list(MODEL_FLAGS.values()), ids=list(MODEL_FLAGS))
def test_model_gradients_match_torch(flags):
    config = tiny_config(**flags)
    model = perturbed_model(config)
    module = to_torch(model)
    batch = padded_batch()
    V = config.tgt_vocab_size

    logits = model.forward(batch.src, batch.tgt_in, training=True)
    loss, loss_cache = cross_entropy_forward(
        logits, batch.tgt_out, label_smoothing=0.1, ignore_index=PAD
    )
    model.zero_grad()
    model.backward(cross_entropy_backward(loss_cache))

    logits_t = module(torch.tensor(batch.src), torch.tensor(batch.tgt_in))
    loss_t = F.cross_entropy(
        logits_t.reshape(-1, V),
        torch.tensor(batch.tgt_out.reshape(-1)),
        ignore_index=PAD,
        label_smoothing=0.1,
    )
    loss_t.backward()

    assert_close("logits", logits, logits_t)
    assert_close("loss", loss, loss_t)
    grads = model.gradients()
    grads_t = torch_gradients(module, config)
    assert sorted(grads) == sorted(grads_t)
    for name in grads:
        assert_close(f"gradient of {name}", grads[name], grads_t[name])


def test_all_padding_source_row_matches_torch():
    """A source row of PAD only: no query of it has a key, in either attention.

    Ours gives zero attention rows there; so does PyTorch 2.13's
    scaled_dot_product_attention, which its layers use while autograd records.
    """
    config = tiny_config()
    model = perturbed_model(config)
    module = to_torch(model)
    src = numpy.array([[3, 4, 5, 2], [PAD, PAD, PAD, PAD]])
    tgt_in = numpy.array([[1, 5, 4, 3], [1, 6, PAD, PAD]])
    tgt_out = numpy.array([[5, 4, 3, 2], [6, 2, PAD, PAD]])
    V = config.tgt_vocab_size

    logits = model.forward(src, tgt_in, training=True)
    loss, loss_cache = cross_entropy_forward(logits, tgt_out, ignore_index=PAD)
    model.zero_grad()
    model.backward(cross_entropy_backward(loss_cache))

    logits_t = module(torch.tensor(src), torch.tensor(tgt_in))
    loss_t = F.cross_entropy(
        logits_t.reshape(-1, V), torch.tensor(tgt_out.reshape(-1)), ignore_index=PAD
    )
    loss_t.backward()

    assert_close("logits", logits, logits_t)
    assert_close("loss", loss, loss_t)
    grads_t = torch_gradients(module, config)
    for name, grad in model.gradients().items():
        assert_close(f"gradient of {name}", grad, grads_t[name])


def test_parameter_map_covers_torch_state_once():
    config = tiny_config(norm_first=True, tie_embeddings=True)
    module = to_torch(Transformer(config))
    state = module.state_dict()
    slots = parameter_map(config)

    assert sorted(slots) == sorted(Transformer(config).parameters())
    assert {slot.torch_name for slot in slots.values()} == set(state)
    covered = {
        name: numpy.zeros(tensor.shape[0], int) for name, tensor in state.items()
    }
    for slot in slots.values():
        covered[slot.torch_name][slot.rows or slice(None)] += 1
    for name, counts in covered.items():
        assert (counts == 1).all(), f"{name}: rows covered {counts.tolist()} times"


def test_from_torch_round_trip_is_exact():
    config = tiny_config(norm_first=True)
    model = perturbed_model(config)

    restored = from_torch(to_torch(model), config)

    for name, param in model.parameters().items():
        assert numpy.array_equal(restored.parameters()[name], param), name


def test_from_torch_keeps_torch_outputs():
    """Weights initialised by PyTorch, not by us, give the same logits after import."""
    config = tiny_config(tie_embeddings=True)
    torch.manual_seed(0)
    module = type(to_torch(Transformer(config)))(config)  # PyTorch's own init
    batch = padded_batch()

    model = from_torch(module, config)

    logits = model.forward(batch.src, batch.tgt_in)
    logits_t = module(torch.tensor(batch.src), torch.tensor(batch.tgt_in))
    assert_close("logits", logits, logits_t)


def test_eval_mode_logits_match_torch_fast_path():
    """In eval mode without autograd, PyTorch's layers take fused kernels."""
    config = tiny_config()
    model = perturbed_model(config)
    module = to_torch(model).eval()
    batch = padded_batch()

    logits = model.forward(batch.src, batch.tgt_in)
    with torch.no_grad():
        logits_t = module(torch.tensor(batch.src), torch.tensor(batch.tgt_in))

    assert_close("eval logits", logits, logits_t)


# ---- optimizer, schedule and training ----------------------------------------------


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_matches_torch_adam(rng, weight_decay):
    shapes = {"matrix": (3, 4), "vector": (5,)}
    params = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
    params_t = {name: leaf(value) for name, value in params.items()}
    optimizer = Adam(params, lr=1e-2, weight_decay=weight_decay)
    optimizer_t = torch.optim.Adam(
        params_t.values(),
        lr=1e-2,
        betas=(0.9, 0.98),
        eps=1e-9,
        weight_decay=weight_decay,
    )

    for step in range(1, 21):
        grads = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
        lr = 1e-2 * (1 + step % 3)  # a changing lr exercises step(grads, lr=...)
        optimizer.step(grads, lr=lr)
        for group in optimizer_t.param_groups:
            group["lr"] = lr
        for name, param_t in params_t.items():
            param_t.grad = torch.tensor(grads[name])
        optimizer_t.step()
        for name in shapes:
            assert_close(f"step {step} {name}", params[name], params_t[name])

    for name, param_t in params_t.items():
        state = optimizer_t.state[param_t]
        assert_close(f"{name} first moment", optimizer.m[name], state["exp_avg"])
        assert_close(f"{name} second moment", optimizer.v[name], state["exp_avg_sq"])


def test_noam_schedule_matches_paper_numbers():
    schedule = NoamSchedule(d_model=512, warmup_steps=4000)

    # The base model of Vaswani et al. (2017) peaks at step 4000:
    # 1 / sqrt(512 * 4000) = 6.98771e-4.
    assert schedule.lr(4000) == pytest.approx(6.9877e-4, rel=1e-4)
    assert schedule.lr(4000) == pytest.approx(6.98771243e-4, rel=1e-8)
    # During warmup the rate rises by 1 / (sqrt(512) * 4000^1.5) per step.
    assert schedule.lr(1) == pytest.approx(1.74692811e-7, rel=1e-8)
    assert schedule.lr(100) == pytest.approx(1.74692811e-5, rel=1e-8)
    # Half the peak twice: halfway up the ramp, and at four times the warmup.
    assert schedule.lr(2000) == pytest.approx(3.49385621e-4, rel=1e-8)
    assert schedule.lr(16000) == pytest.approx(3.49385621e-4, rel=1e-8)
    # Decay: 1 / sqrt(512 * 100000).
    assert schedule.lr(100000) == pytest.approx(1.39754249e-4, rel=1e-8)
    assert schedule.lr(3999) < schedule.lr(4000)
    assert schedule.lr(4001) < schedule.lr(4000)
    with pytest.raises(ValueError):
        schedule.lr(0)


def test_training_loss_curves_match_torch():
    """Twenty steps of train_step against the same steps written in PyTorch."""
    config = TransformerConfig(
        src_vocab_size=13,
        tgt_vocab_size=13,
        d_model=32,
        num_heads=4,
        num_encoder_layers=2,
        num_decoder_layers=2,
        d_ff=64,
        dropout=0.0,
        max_len=16,
        pad_id=PAD,
        dtype="float64",
    )
    model = Transformer(config, seed=0)
    module = to_torch(model)
    task = get_task("copy", num_symbols=10, max_length=8)
    train_rng, _ = data_streams(0)
    batches = [task.sample_batch(train_rng, 16) for _ in range(20)]
    schedule = NoamSchedule(config.d_model, warmup_steps=100)
    optimizer = Adam(model.parameters())
    optimizer_t = torch.optim.Adam(
        module.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9
    )

    losses, losses_t = [], []
    for step, batch in enumerate(batches, start=1):
        loss, lr, _ = train_step(
            model, optimizer, schedule, batch, step, label_smoothing=0.1, clip_norm=1.0
        )
        losses.append(loss)

        logits_t = module(torch.tensor(batch.src), torch.tensor(batch.tgt_in))
        loss_t = F.cross_entropy(
            logits_t.reshape(-1, config.tgt_vocab_size),
            torch.tensor(batch.tgt_out.reshape(-1)),
            ignore_index=PAD,
            label_smoothing=0.1,
        )
        optimizer_t.zero_grad()
        loss_t.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        for group in optimizer_t.param_groups:
            group["lr"] = lr
        optimizer_t.step()
        losses_t.append(loss_t.item())

    assert_close("loss curve", numpy.array(losses), numpy.array(losses_t))
    assert losses[-1] < losses[0] - 0.1, f"the loss did not fall: {losses}"
