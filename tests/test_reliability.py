"""Reliability: anomaly detection, leaks over long training, threads, crash-safe checkpoints."""

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import needle as ndl
from needle import autograd
from needle.errors import GraphError

# ---------------------------------------------------------------------------------------------
# Anomaly detection


def test_anomaly_names_forward_op_site_and_shapes():
    x = ndl.Tensor([[1.0, 0.0]])
    with ndl.autograd.detect_anomaly():
        with pytest.raises(GraphError) as info:
            ndl.log(x * 1.0)  # the offending line
    msg = str(info.value)
    assert "forward of Log" in msg and "produced NaN/Inf" in msg
    assert f"{__file__}:" in msg and "(1, 2)" in msg


def test_anomaly_names_backward_op():
    x = ndl.Tensor([4.0, 0.0])
    with ndl.autograd.detect_anomaly():
        y = ndl.sqrt(x).sum()
        with pytest.raises(GraphError) as info:
            y.backward()
    msg = str(info.value)
    assert "backward of Sqrt" in msg and f"{__file__}:" in msg


def test_anomaly_reports_nan_coming_from_a_leaf():
    x = ndl.Tensor([np.nan, 1.0])
    with ndl.autograd.detect_anomaly(), pytest.raises(GraphError, match=r"input\(s\) \[0\]"):
        x * 2


def test_anomaly_off_by_default_and_restored():
    x = ndl.Tensor([0.0])
    with np.errstate(all="ignore"):
        y = ndl.log(x)  # no error outside the context
    assert np.isneginf(y.numpy()).all()
    assert "_creation_site" not in y.__dict__

    @ndl.autograd.detect_anomaly()
    def f():
        return ndl.log(ndl.Tensor([0.0]))

    with pytest.raises(GraphError):
        f()
    # Off again: the engine hooks are gone (the eager path checks an empty list).
    from needle.anomaly import _check_forward, _checked_gradient

    assert _check_forward not in ndl.core.OBSERVERS
    assert _checked_gradient not in ndl.core.GRADIENT_WRAPPERS
    with np.errstate(all="ignore"):
        ndl.log(x)


# ---------------------------------------------------------------------------------------------
# Leaks


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_2000_training_steps_keep_tensor_counter_and_rss_flat():
    np.random.seed(0)
    model = ndl.nn.Sequential(ndl.nn.Linear(20, 32), ndl.nn.ReLU(), ndl.nn.Linear(32, 4))
    opt = ndl.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = ndl.nn.SoftmaxLoss()
    X = np.random.randn(16, 20).astype(np.float32)
    y = np.random.randint(0, 4, 16)

    def step():
        opt.reset_grad()
        loss = loss_fn(model(ndl.Tensor(X)), ndl.Tensor(y))
        loss.backward()
        opt.step()
        return loss.numpy()

    for _ in range(100):  # warm up caches and allocator pools
        step()
    gc.collect()
    counter0, rss0 = autograd.TENSOR_COUNTER, _rss_bytes()
    first = step()
    for _ in range(2000 - 101):
        last = step()
    gc.collect()
    assert last < first  # it trained
    assert autograd.TENSOR_COUNTER - counter0 <= 0
    assert _rss_bytes() - rss0 < 5 * 2**20


# ---------------------------------------------------------------------------------------------
# Threads


def _forward_backward(seed):
    rng = np.random.default_rng(seed)
    a = ndl.Tensor(rng.standard_normal((8, 8)), dtype="float64")
    b = ndl.Tensor(rng.standard_normal((8, 8)), dtype="float64")
    out = ndl.logsumexp(ndl.tanh(a @ b) * 2, axes=(1,)).sum()
    out.backward()
    return out.numpy(), a.grad.numpy(), b.grad.numpy()


def test_threads_give_serial_results():
    serial = [_forward_backward(s) for s in range(10)]
    results = [None] * 10
    barrier = threading.Barrier(10)

    def worker(i):
        barrier.wait()
        for _ in range(20):
            results[i] = _forward_backward(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s, r in zip(serial, results):
        for x, y in zip(s, r):
            np.testing.assert_array_equal(x, y)


def test_no_grad_in_one_thread_does_not_leak_to_another():
    inside = threading.Event()
    release = threading.Event()

    def holder():
        with ndl.no_grad():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(5)
    try:
        assert (ndl.Tensor([1.0]) * 2).requires_grad
    finally:
        release.set()
        t.join()


# ---------------------------------------------------------------------------------------------
# Checkpoints survive SIGKILL in the middle of ndl.save

_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import needle as ndl
    path = sys.argv[1]
    version = int(sys.argv[2])
    while True:
        version += 1
        sd = {f"layer{i}.weight": np.full((256, 256), version, dtype=np.float32)
              for i in range(24)}
        sd["version"] = np.array([version], dtype=np.int64)
        ndl.save(sd, path)
        print(version, flush=True)
    """
)


def _check_complete(path):
    sd = ndl.load(path)
    version = int(sd["version"][0])
    assert len(sd) == 25
    for key, value in sd.items():
        if key != "version":
            assert value.shape == (256, 256) and (value == version).all(), key
    return version


def test_sigkill_during_save_never_loses_the_checkpoint(tmp_path):
    path = os.fspath(tmp_path / "ckpt.npz")
    ndl.save({f"layer{i}.weight": np.zeros((256, 256), np.float32) for i in range(24)}
             | {"version": np.array([0], dtype=np.int64)}, path)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(ndl.__file__))] + sys.path)
    rng = np.random.default_rng(0)
    kills, versions = 0, [0]
    for _ in range(15):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, path, str(versions[-1])],
                                stdout=subprocess.PIPE, env=env)
        proc.stdout.readline()  # at least one save done: writes are now in flight
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        kills += 1
        versions.append(_check_complete(path))
    assert kills == 15
    assert versions == sorted(versions) and versions[-1] > 0
    leftovers = [f for f in os.listdir(tmp_path) if f != "ckpt.npz"]
    assert len(leftovers) <= kills  # temp files of killed writers at most, never the target
