"""ndl.jit: a traced and replayed function equals the eager one bit for bit.

Every test runs the same seeded code twice, eagerly and under ``ndl.jit``, and compares
results, gradients and state with ``np.array_equal`` (not a tolerance). Also: retracing on
new signatures and changed Python state, the cache bound, errors for data-dependent
Python, threads, randomness and the graph-mode Evaluator through the same compiler.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import needle as ndl
import needle.nn as nn
from needle import graph as ad
from needle.errors import GraphError, JitError
from needle.jit import JitWarning

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps import models, train_cifar10, train_mnist, train_ptb  # noqa: E402
from bench import fw_needle  # noqa: E402
from bench import workloads as wl  # noqa: E402


def _values(*objs) -> list:
    """Numpy copies of tensors (and of tensors in containers); None stays None."""
    out = []
    for obj in objs:
        if isinstance(obj, (list, tuple)):
            out.extend(_values(*obj))
        elif obj is None:
            out.append(None)
        else:
            out.append(obj.numpy().copy())
    return out


def assert_bitwise(a: list, b: list) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        if x is None or y is None:
            assert x is None and y is None, i
            continue
        assert x.shape == y.shape and x.dtype == y.dtype, (i, x.shape, y.shape, x.dtype, y.dtype)
        assert np.array_equal(x, y, equal_nan=True), f"entry {i} differs: max diff " \
            f"{np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))}"


def _t(array, requires_grad: bool = False, dtype: str = "float32") -> ndl.Tensor:
    return ndl.Tensor(np.asarray(array), dtype=dtype, requires_grad=requires_grad)


# ----------------------------------------------------------------------------------------------
# The benchmark workloads W1-W6


SMALL = {"W1": {"n_ops": 13, "n": 8}, "W2": {"batch": 6, "dims": (12, 9, 7, 5)},
         "W3": {"n": 16}, "W4": {"n_ops": 401, "n": 1}}


@pytest.mark.parametrize("name", ["W1", "W2", "W3", "W4"])
def test_bench_workloads_bitwise(name):
    data = wl.make_data(name, **SMALL[name])
    eager, jitted = fw_needle.build(name, data), fw_needle.build(name, data)
    step = ndl.jit(jitted.step)
    for _ in range(4):
        eager.step()
        step()
        a, b = eager.result(), jitted.result()
        assert sorted(a) == sorted(b)
        assert_bitwise([np.asarray(a[k]) for k in sorted(a)], [np.asarray(b[k]) for k in sorted(b)])
    assert step.stats["replays"] >= 2


def test_w5_no_memory_growth_under_jit():
    # W5 is W2's step repeated: the live Value count stays flat while replaying.
    data = wl.make_data("W2", **SMALL["W2"])
    step = ndl.jit(fw_needle.build("W2", data).step)
    for _ in range(5):
        step()
    start = ndl.autograd.TENSOR_COUNTER
    for _ in range(30):
        step()
    assert ndl.autograd.TENSOR_COUNTER - start <= 2
    assert step.stats["replays"] >= 30


def _digits(n: int = 200, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (n, 64)).astype(np.float32)
    return X, rng.integers(0, 10, n).astype(np.uint8)


def test_w6_demo_epochs_bitwise():
    # The demo's MLPResNet (BatchNorm, Dropout, Adam with cosine lr) through run_epoch;
    # 200 samples in batches of 64 leave a short last batch (a second signature).
    X, y = _digits()

    def run(jit: bool) -> list:
        np.random.seed(0)
        model = train_mnist.MLPResNet(64, hidden_dim=32)
        opt = ndl.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.001)
        loader = ndl.data.DataLoader(ndl.data.NDArrayDataset(X, y), 64, shuffle=True)
        steps = train_mnist.Steps(model, opt, jit)
        out = []
        for e in range(3):
            opt.lr = 0.01 * 0.5 * (1 + np.cos(np.pi * e / 3))
            out.append(np.array(train_mnist.run_epoch(loader, model, opt, steps=steps)))
            out.append(np.array(train_mnist.run_epoch(loader, model, steps=steps)))
        return out + _values(*model.parameters()) + [np.array(opt.t)], steps

    (eager, _), (jitted, steps) = run(False), run(True)
    assert_bitwise(eager, jitted)
    assert steps.train.stats["replays"] > 0 and steps.eval.stats["replays"] > 0
    assert steps.train.stats["retraces"] == 0  # the lr changes each epoch: no retrace


# ----------------------------------------------------------------------------------------------
# Training steps: optimizers, clipping, Dropout, BatchNorm


def _mlp_run(jit: bool, opt_name: str, steps: int = 20, clip: float | None = None,
             drop: float = 0.0, norm: type | None = None) -> list:
    np.random.seed(3)
    layers = [nn.Linear(6, 16)] + ([norm(16)] if norm else []) + [nn.ReLU()]
    layers += [nn.Dropout(drop)] if drop else []
    model = nn.Sequential(*layers, nn.Linear(16, 4))
    if opt_name == "sgd":
        opt = ndl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    else:
        opt = ndl.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.01)
    loss_fn = nn.SoftmaxLoss()

    def step(X, y):
        opt.reset_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        if clip is not None:
            opt.clip_grad_norm(clip)
        opt.step()
        return loss

    f = ndl.jit(step) if jit else step
    rng = np.random.default_rng(1)
    np.random.seed(7)
    losses = []
    for _ in range(steps):
        losses.append(f(_t(rng.standard_normal((8, 6))), ndl.Tensor(rng.integers(0, 4, 8),
                                                                    requires_grad=False)))
    out = _values(losses, model.parameters(), [p.grad for p in model.parameters()])
    if norm is not None:
        out += _values(model.modules[1].running_mean, model.modules[1].running_var)
    if opt_name == "adam":
        out.append(np.array(opt.t))
    if jit:
        assert f.stats["replays"] >= steps - 2
    return out


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
@pytest.mark.parametrize("clip", [None, 0.5])
def test_mlp_optimizers_bitwise(opt_name, clip):
    assert_bitwise(_mlp_run(False, opt_name, clip=clip), _mlp_run(True, opt_name, clip=clip))


def test_dropout_draws_fresh_masks_in_eager_order():
    assert_bitwise(_mlp_run(False, "sgd", steps=8, drop=0.4), _mlp_run(True, "sgd", steps=8,
                                                                        drop=0.4))


def test_batchnorm1d_running_statistics_bitwise():
    a = _mlp_run(False, "adam", steps=8, norm=nn.BatchNorm1d)
    assert_bitwise(a, _mlp_run(True, "adam", steps=8, norm=nn.BatchNorm1d))


def _bn2d_run(jit: bool) -> list:
    np.random.seed(0)
    model = nn.Sequential(nn.Conv(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
    opt = ndl.optim.SGD(model.parameters(), lr=0.1)

    def train(x):
        opt.reset_grad()
        out = model(x)
        loss = (out * out).sum()
        loss.backward()
        opt.step()
        return loss

    def forward(x):
        return model(x)

    train_f, fwd_f = (ndl.jit(train), ndl.jit(forward)) if jit else (train, forward)
    rng = np.random.default_rng(0)
    out = []
    for phase in ("train", "eval", "train", "eval"):
        getattr(model, phase)()
        for _ in range(3):
            x = _t(rng.standard_normal((2, 2, 5, 5)))
            out.append(train_f(x) if phase == "train" else fwd_f(x))
    bn = model.modules[1]
    return _values(out, bn.running_mean, bn.running_var, model.parameters())


def test_batchnorm2d_with_train_eval_switches_bitwise():
    assert_bitwise(_bn2d_run(False), _bn2d_run(True))


# ----------------------------------------------------------------------------------------------
# Apps' models on synthetic data


def test_resnet9_step_bitwise():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (4, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, 4).astype(np.uint8)

    def run(jit: bool) -> list:
        np.random.seed(0)
        model = models.ResNet9()
        opt = ndl.optim.Adam(model.parameters(), lr=0.001, weight_decay=0.001)
        steps = train_cifar10.Steps(model, opt, jit)
        model.train()
        out = []
        for i in range(3):
            X, y = _t(images[i % 2 * 2:i % 2 * 2 + 2]), ndl.Tensor(labels[:2],
                                                                   requires_grad=False)
            out += _values(*steps.train(X, y))
        model.eval()
        out += _values(*steps.eval(_t(images[:2]), ndl.Tensor(labels[:2], requires_grad=False)))
        return out + _values(model.parameters())

    assert_bitwise(run(False), run(True))


def test_lstm_language_model_steps_bitwise():
    rng = np.random.default_rng(0)
    data = ndl.data.batchify(list(rng.integers(0, 20, 200)), 4, dtype="float32")

    def run(jit: bool) -> list:
        np.random.seed(0)
        model = models.LanguageModel(8, 20, 8, 1, "lstm", seq_len=5, device=ndl.cpu())
        opt = ndl.optim.SGD(model.parameters(), lr=1.0)
        steps = train_ptb.Steps(model, opt, clip=0.25, jit=jit)
        out = [np.array(train_ptb.run_epoch(data, model, 5, opt, 0.25, "", False, steps))]
        out.append(np.array(train_ptb.run_epoch(data, model, 5, None, None, "", False, steps)))
        return out + _values(model.parameters())

    assert_bitwise(run(False), run(True))


# ----------------------------------------------------------------------------------------------
# Graph mode: Evaluator through the same compiler


def test_evaluator_compiled_equals_node_by_node_on_many_feeds():
    x, w = ad.Variable("x"), ad.Variable("w")
    h = ad.relu(ad.matmul(x, w))
    y = ad.sum_op(ad.softmax(h, dim=1) * h, dim=(0, 1))
    gx, gw = ad.gradients(y, [x, w])
    compiled, plain = ad.Evaluator([y, gx, gw, h]), ad.Evaluator([y, gx, gw, h], compile=False)
    rng = np.random.default_rng(0)
    for i in range(12):
        n = 3 if i % 3 else 5  # two signatures of the feeds
        feed = {x: rng.standard_normal((n, 4)), w: rng.standard_normal((4, 6))}
        a, b = plain.run(feed), compiled.run(feed)
        assert_bitwise(a, b)
        b[0][...] = 0  # results are fresh arrays: changing one leaves the next run alone
    assert len(compiled._schedules) == 2


# ----------------------------------------------------------------------------------------------
# Random op programs


UNARY = ["exp_tanh", "relu", "neg", "square", "sigmoid", "sum0", "log1p_abs", "transpose"]
BINARY = ["add", "mul", "sub", "div_safe", "matmul", "max_pair"]


def _apply(kind: str, a, b=None):
    o = ndl.ops
    if kind == "exp_tanh":
        return o.exp(o.tanh(a))
    if kind == "relu":
        return o.relu(a)
    if kind == "neg":
        return -a
    if kind == "square":
        return a * a
    if kind == "sigmoid":
        return o.sigmoid(a)
    if kind == "sum0":
        return o.broadcast_to(a.sum(axes=(0,), keepdims=True), a.shape)
    if kind == "log1p_abs":
        return o.log(o.abs(a) + 1.0)
    if kind == "transpose":
        return o.transpose(o.transpose(a) * 2.0)
    if kind == "add":
        return a + b
    if kind == "mul":
        return a * b
    if kind == "sub":
        return a - b
    if kind == "div_safe":
        return a / (b * b + 1.0)
    if kind == "matmul":
        return (a @ o.transpose(b)) @ b / 4.0
    return o.maximum(a, b)


@st.composite
def programs(draw):
    n_ops = draw(st.integers(1, 8))
    prog = []
    for _ in range(n_ops):
        if draw(st.booleans()):
            prog.append((draw(st.sampled_from(UNARY)), draw(st.integers(0, 9)), None))
        else:
            prog.append((draw(st.sampled_from(BINARY)), draw(st.integers(0, 9)),
                         draw(st.integers(0, 9))))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    return prog, dtype


@settings(max_examples=25, deadline=None)
@given(programs())
def test_random_op_programs_bitwise(program):
    prog, dtype = program

    def fn(x, y):
        vals = [x, y]
        for kind, i, j in prog:
            a = vals[i % len(vals)]
            vals.append(_apply(kind, a, None if j is None else vals[j % len(vals)]))
        loss = sum((v * v).sum() for v in vals[2:]) if len(vals) > 2 else (x * y).sum()
        loss.backward()
        return vals[-1], loss

    f = ndl.jit(fn)
    rng = np.random.default_rng(len(prog))
    for _ in range(3):
        xs, ys = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
        x1, y1 = _t(xs, True, dtype), _t(ys, True, dtype)
        x2, y2 = _t(xs, True, dtype), _t(ys, True, dtype)
        assert_bitwise(_values(fn(x1, y1), x1.grad, y1.grad), _values(f(x2, y2), x2.grad,
                                                                      y2.grad))


# ----------------------------------------------------------------------------------------------
# Signatures, the cache, state that changes


def test_shape_change_traces_again_and_matches():
    w = _t(np.arange(4.0).reshape(2, 2), True)

    def fn(x):
        return ((x @ w).tanh()).sum()

    f = ndl.jit(fn)
    rng = np.random.default_rng(0)
    for n in (1, 3, 1, 3, 5):
        x = _t(rng.standard_normal((n, 2)))
        assert_bitwise(_values(fn(x)), _values(f(x)))
    assert f.stats["traces"] == 3 and f.stats["replays"] == 2


def test_cache_bound_holds():
    f = ndl.jit(lambda x: (x * x).sum(), cache_size=2)
    for n in (1, 2, 3, 4, 1, 2):
        f(_t(np.ones(n)))
        assert f.cache_len <= 2
    assert f.stats["traces"] == 6  # 1 and 2 were evicted before they came back
    with pytest.raises(ValueError, match="cache_size"):
        ndl.jit(lambda x: x, cache_size=0)


def test_item_inside_raises_jit_error_naming_the_line():
    def fn(x):
        total = (x * 2).sum()
        if total.item() > 0:  # the line the error names
            return x
        return -x

    with pytest.raises(JitError) as info:
        ndl.jit(fn)(_t([1.0, 2.0]))
    message = str(info.value)
    assert f"{__file__}:" in message and "total.item() > 0" in message
    assert "enabled=False" in message

    def branch(x):
        if x.sum() > 0:
            return x
        return -x

    with pytest.raises(JitError, match="condition"):
        ndl.jit(branch)(_t([1.0]))
    with pytest.raises(JitError, match="float"):
        ndl.jit(lambda x: float(x.sum()))(_t([1.0]))


def test_returning_python_numbers_or_unhashable_arguments_is_refused():
    with pytest.raises(JitError, match="returned a float"):
        ndl.jit(lambda x: 3.0)(_t([1.0]))
    with pytest.raises(JitError, match="not hashable"):
        ndl.jit(lambda x, arr: x)(_t([1.0]), np.ones(2))


def test_two_threads_get_their_own_results():
    w = _t(np.random.default_rng(0).standard_normal((4, 4)))

    def fn(x):
        return (x @ w).relu() * 2.0 + x

    f = ndl.jit(fn)
    results, errors = {}, []

    def worker(k: int) -> None:
        try:
            rng = np.random.default_rng(k)
            got = []
            for _ in range(25):
                x = _t(rng.standard_normal((3, 4)))
                got.append((fn(x).numpy(), f(x).numpy()))
            results[k] = got
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got in results.values():
        for eager, jitted in got:
            assert np.array_equal(eager, jitted)


def test_returned_tensors_keep_their_values_and_are_detached():
    w = _t([1.0, 2.0], True)

    @ndl.jit
    def step(x):
        loss = (x * w).sum()
        loss.backward()
        return loss

    losses = [step(_t([float(i), 1.0])) for i in range(6)]
    assert [float(v.numpy()) for v in losses] == [i + 2.0 for i in range(6)]
    assert not losses[-1].requires_grad
    with pytest.raises(GraphError):
        losses[-1].backward()


def test_adam_step_count_and_lr_schedule_are_never_stale():
    p = nn.Parameter(_t([1.0, -2.0], True))
    q = nn.Parameter(_t([1.0, -2.0], True))
    opt_e, opt_j = ndl.optim.Adam([p], lr=0.1), ndl.optim.Adam([q], lr=0.1)

    def make(param, opt):
        def step():
            opt.reset_grad()
            (param * param).sum().backward()
            opt.step()
        return step

    eager, jitted = make(p, opt_e), ndl.jit(make(q, opt_j))
    for i in range(8):
        opt_e.lr = opt_j.lr = 0.1 / (i + 1)  # a schedule set from outside
        eager()
        jitted()
        assert_bitwise(_values(p, p.grad), _values(q, q.grad))
    assert opt_e.t == opt_j.t == 8
    assert jitted.stats["retraces"] == 0 and jitted.stats["replays"] >= 6


def test_python_value_read_by_the_function_retraces_when_it_changes():
    scale = {"value": 2.0}
    x = _t([1.0, 2.0])
    f = ndl.jit(lambda x: x * scale["value"])
    assert f(x).numpy().tolist() == [2.0, 4.0]
    assert f(x).numpy().tolist() == [2.0, 4.0]
    scale["value"] = 3.0
    assert f(x).numpy().tolist() == [3.0, 6.0]
    assert f.stats["retraces"] == 1


def test_python_state_changed_inside_runs_eagerly_with_a_warning():
    class Counter:
        n = 0

    c = Counter()
    c.n = 0

    def fn(x):
        c.n += 1
        return x * c.n

    f = ndl.jit(fn)
    with pytest.warns(JitWarning, match="c.n"):
        outs = [f(_t([1.0])).numpy()[0] for _ in range(5)]
    assert outs == [1.0, 2.0, 3.0, 4.0, 5.0] and c.n == 5


def test_numpy_random_inside_is_not_replayed():
    def fn(x):
        return x * float(np.random.rand())

    f = ndl.jit(fn)
    np.random.seed(0)
    with pytest.warns(JitWarning, match="random"):
        got = [f(_t([1.0])).numpy()[0] for _ in range(4)]
    np.random.seed(0)
    assert got == [np.float32(np.random.rand()) for _ in range(4)]


def test_state_layout_change_traces_again():
    w = _t(np.arange(6.0).reshape(2, 3))
    f = ndl.jit(lambda x: x @ w)
    x = _t(np.ones((1, 2)))
    f(x)
    f(x)
    w.data = _t(np.arange(6.0).reshape(3, 2)).transpose()  # same shape, other strides
    assert np.array_equal(f(x).numpy(), x.numpy() @ w.numpy())
    assert f.stats["traces"] == 2


def test_disabled_and_environment_switch_run_eagerly(monkeypatch):
    f = ndl.jit(lambda x: x + 1, enabled=False)
    f(_t([1.0]))
    assert f.stats["traces"] == 0
    g = ndl.jit(lambda x: x + 1)
    monkeypatch.setenv("NEEDLE_JIT", "0")
    out = g(_t([1.0]))
    assert g.stats["traces"] == 0 and out.requires_grad is False


def test_method_decorator_and_nested_jit():
    class Model:
        def __init__(self, k):
            self.w = _t([k, k])

        @ndl.jit
        def forward(self, x):
            return inner(x) * self.w

    inner = ndl.jit(lambda x: x + 1)
    a, b = Model(2.0), Model(3.0)
    x = _t([1.0, 2.0])
    for _ in range(3):
        assert a.forward(x).numpy().tolist() == [4.0, 6.0]
        assert b.forward(x).numpy().tolist() == [6.0, 9.0]
    assert inner.stats["traces"] == 0  # inlined into the traced calls


def test_gradients_of_arguments_are_written():
    def fn(x, y):
        (x * y).sum().backward()

    f = ndl.jit(fn)
    for k in range(3):
        x1, y1 = _t([1.0, float(k)], True), _t([3.0, 4.0], True)
        x2, y2 = _t([1.0, float(k)], True), _t([3.0, 4.0], True)
        fn(x1, y1)
        assert f(x2, y2) is None
        assert_bitwise(_values(x1.grad, y1.grad), _values(x2.grad, y2.grad))


def test_gradient_copies_made_by_the_engine_are_replayed():
    # backward gives a read-only broadcast gradient memory of its own, and two leaves that
    # got one gradient array each a copy: those copies are steps of the replay too, so every
    # call's gradients are fresh, writable and independent, as eagerly.
    w = nn.Parameter(_t([1.0, 2.0, 3.0], True))
    v = nn.Parameter(_t([4.0, 5.0, 6.0], True))

    @ndl.jit
    def step(x):
        w.grad = v.grad = None
        ((w + v).sum() * x.sum()).backward()

    for k in range(4):
        step(_t([float(k), 1.0]))
        assert w.grad.numpy().tolist() == [k + 1.0] * 3
        assert v.grad.numpy().tolist() == [k + 1.0] * 3
        assert w.grad._data is not v.grad._data
        w.grad._data[0] = -1.0  # writable, and v's gradient is not w's
        assert v.grad.numpy()[0] == k + 1.0
    assert step.stats["replays"] == 3
    u = nn.Parameter(_t([1.0, 2.0], True))

    @ndl.jit
    def total():
        u.grad = None
        u.sum().backward()

    for _ in range(3):
        total()
        assert u.grad.numpy().tolist() == [1.0, 1.0] and u.grad._data.flags.writeable
    assert total.stats["replays"] == 2


def test_warnings_point_at_the_caller():
    state = {"n": 0}

    def fn(x):
        state["n"] = state["n"] + 1
        return x

    f = ndl.jit(fn)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(4):
            f(_t([1.0]))
    assert any(w.filename == __file__ for w in caught if issubclass(w.category, JitWarning))


@pytest.mark.parametrize("seed", range(12))
def test_suite_random_view_programs_under_jit(seed):
    # test_inplace's random programs of views and in-place ops: a program that writes in
    # place is refused with JitError (never replayed wrongly); the same program without its
    # writes (views and uses only) gives the eager values and gradients bit for bit.
    from test_inplace import NeedleLib, random_program, run_program

    xv, wv, steps = random_program(seed)
    pure = [s for s in steps if s[0] not in ("inplace", "setitem")]

    def program(steps):
        def fn(x, w):
            loss = run_program(NeedleLib(), steps, x, w)
            loss.backward()
            return loss
        return fn

    if len(pure) < len(steps):
        with pytest.raises(JitError, match="in-place"):
            ndl.jit(program(steps))(_t(xv, True, "float64"), _t(wv, True, "float64"))
    x1, w1 = _t(xv, True, "float64"), _t(wv, True, "float64")
    eager = _values(program(pure)(x1, w1), x1.grad, w1.grad)
    f = ndl.jit(program(pure))
    for _ in range(3):
        x2, w2 = _t(xv, True, "float64"), _t(wv, True, "float64")
        assert_bitwise(eager, _values(f(x2, w2), x2.grad, w2.grad))
