"""needle.distributed, nn.parallel.DistributedDataParallel, data.DistributedSampler.

The MPI tests start ``mpiexec -n 2`` (the one installed next to this Python, from the
``mpich`` wheel of the ``[distributed]`` extra) on the scripts in ``tests/mpi_scripts``,
each under a timeout; those scripts write what they measured to files and the assertions
are made here. The sampler and the argument checks need no MPI and run in this process
(which never imports mpi4py: the world-of-one tests run in a child process).
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import needle as ndl
import needle.distributed as dist
from needle.data import DistributedSampler

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "mpi_scripts"
MPIEXEC = Path(sys.executable).parent / "mpiexec"

_MISSING = [what for what, ok in [
    ("mpi4py", importlib.util.find_spec("mpi4py") is not None),
    (f"mpiexec at {MPIEXEC}", MPIEXEC.exists()),
] if not ok]
needs_mpi = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"MPI is not installed ({', '.join(_MISSING)} missing): `pip install -e "
           "'.[distributed]'` (mpi4py + mpich) failed or was not run on this platform",
)


def _run(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int, str, str, float]:
    """Run ``cmd`` in its own process group; on timeout kill the group and fail."""
    full_env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **(env or {}))
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish within {timeout} s\n{out}\n{err}")
    return proc.returncode, out, err, time.perf_counter() - start


def mpirun(args: list[str], n: int = 2, timeout: float = 120, env: dict | None = None):
    """``mpiexec -n n python ARGS...`` from the repository root."""
    return _run([str(MPIEXEC), "-n", str(n), sys.executable, *args], timeout, env)


def _results(folder: Path, n: int = 2) -> list[dict]:
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in range(n)]


# ----------------------------------------------------------------------------------------------
# 1. DDP against one process


@pytest.fixture(scope="module", params=["nd", "np"])
def ddp_results(request, tmp_path_factory):
    """What ddp_equivalence.py measured on each of 2 ranks, on each needle backend."""
    if _MISSING:
        pytest.skip(needs_mpi.kwargs["reason"])
    folder = tmp_path_factory.mktemp(f"ddp_{request.param}")
    code, out, err, _ = mpirun([str(SCRIPTS / "ddp_equivalence.py"), str(folder)],
                               env={"NEEDLE_BACKEND": request.param})
    assert code == 0, out + err
    results = _results(folder)
    assert all(r["backend"] == request.param for r in results)
    return results


def test_ddp_training_matches_one_process(ddp_results):
    for result in ddp_results:
        assert result["world"] == 2
        cases = result["equivalence"]
        assert {(c["dtype"], c["optimizer"]) for c in cases} == {
            (d, o) for d in ("float32", "float64") for o in ("sgd", "adam")}
        for c in cases:
            # 20 steps of global batch 64 (2 x 32) against 20 steps on the 64 samples
            tol = 1e-10 if c["dtype"] == "float64" else 1e-5
            assert c["max_diff_vs_single_process"] <= tol, c
            assert c["max_diff_across_ranks"] == 0.0, c  # the replicas stay identical
            # one allreduce per bucket and backward, not one per parameter
            assert c["stats"]["rounds"] == 20
            assert c["stats"]["allreduces"] == 20 * c["buckets"], c
            if c["bucket_cap_mb"] == 25:
                assert c["buckets"] == 1 and c["parameters"] == 6
            else:
                assert c["buckets"] > 1


def test_buckets_start_during_backward_in_order(ddp_results):
    sizes = {0: 8 * 16, 1: 16, 2: 16 * 16, 3: 16, 4: 16 * 4, 5: 4}  # parameter -> elements
    for result in ddp_results:
        got = result["bucket_events"]
        events = [tuple(e) for e in got["events"]]
        assert got["buckets"] == 3 and got["parameters"] == 6
        launches = [i for i, e in enumerate(events) if e[0] == "allreduce"]
        grads = [i for i, e in enumerate(events) if e[0] == "grad"]
        assert len(launches) == 3
        # The first bucket is on its way before backward has reached the first layer.
        assert launches[0] < grads[-1]
        # Each allreduce carries its bucket's gradients (plus one flag per parameter) and
        # starts right after the hook of the bucket's last parameter.
        buckets = [(5, 4, 3), (2,), (1, 0)]
        for launch, members in zip(launches, buckets):
            assert events[launch][1] == sum(sizes[m] for m in members) + len(members)
            assert events[launch + 1] == ("grad", members[-1])


def test_no_sync_and_unused_parameters(ddp_results):
    for result in ddp_results:
        no_sync = result["no_sync"]
        # two no_sync passes + one synchronised pass per step == one process summing the
        # three micro-batch losses of every rank, divided by the number of ranks
        assert no_sync["max_diff_vs_single_process"] <= 1e-10
        assert no_sync["inside_no_sync_vs_local_sum"] <= 1e-12  # .grad: the local sum so far
        assert no_sync["after_reset_vs_one_pass"] <= 1e-12  # reset_grad() restarts the sum
        unused = result["unused"]
        assert unused["body"] <= 1e-12
        # used on rank 0 only: averaged with rank 1's zeros, on both ranks
        assert unused["used_by_rank0"] <= 1e-12
        assert unused["never_grad_is_none"]
        assert unused["state_dict_keys"] == unused["module_keys"]
        assert "body.weight" in unused["state_dict_keys"]
        # rank 0's BatchNorm statistics reach the other rank at a training forward (and a
        # forward under no_grad() on rank 0 alone did not hang the script)
        assert result["buffers"]["after_training_forward"] <= 1e-12


# ----------------------------------------------------------------------------------------------
# 2. Collectives


@needs_mpi
@pytest.mark.parametrize("backend", ["nd", "np"])
def test_collectives(tmp_path, backend):
    code, out, err, _ = mpirun([str(SCRIPTS / "collectives.py"), str(tmp_path)],
                               env={"NEEDLE_BACKEND": backend})
    assert code == 0, out + err
    for result in _results(tmp_path):
        cases = result["cases"]
        kinds = {c["what"] for c in cases}
        assert {f"all_reduce {op.name}" for op in dist.ReduceOp} <= kinds
        assert {"broadcast src=0", "broadcast src=1", "all_gather"} <= kinds
        shapes = {tuple(c["shape"]) for c in cases}
        assert {(), (0,), (2, 0, 4), (3, 4, 5)} <= shapes
        bad = [c for c in cases if c["error"] > (1e-6 if c["dtype"] == "float32" else 1e-12)]
        assert not bad, bad[:5]
        assert all(c["result_dtype"] == c["dtype"] for c in cases if "result_dtype" in c)
        assert all(c["count"] == [2, 2] for c in cases if c["what"] == "all_gather")
        errors = result["errors"]
        assert "rank 0: ((2,), 'float32', 'SUM'), rank 1: ((3,), 'float32', 'SUM')" in \
            errors["all_reduce shapes"]
        assert "'float64'" in errors["broadcast dtypes"] and "'float32'" in \
            errors["broadcast dtypes"]
        assert "expected a needle Tensor, got ndarray" in errors["not a tensor"]
        assert "1 tensors, expected one per rank (2)" in errors["all_gather list length"]


# ----------------------------------------------------------------------------------------------
# 4. Faults: nothing hangs


# What each run of faults.py must print (on stderr, with mpiexec's): rank 0 waits in a
# collective that rank 1 never joins, and the job must end with a message saying why.
_LEFT = ("rank 1 left the process group ({how}) after 3 collective calls, so it will never "
         "join call #4, which rank 0 of 2 is making")
_TIMED_OUT = ("rank 0 of 2 waited more than the process group's timeout of 2 s for the other "
              "ranks")
_FAULTS = {
    "raise": ["RuntimeError: rank 1 fails on purpose",
              "rank 1 of 2 raised RuntimeError; calling MPI_Abort to end every rank"],
    "raise-before-init": [
        "FileNotFoundError: rank 1 fails before init_process_group on purpose",
        "rank 1 of 2 raised FileNotFoundError before init_process_group; stopping this "
        "process with SIGTERM so that mpiexec ends every rank"],
    # faulthandler's stack dump: the frames name what was waited for
    "exit-before-init": ["Timeout (0:00:02)!",
                         "in _mpi_init_waits_for_every_rank_to_call_init_process_group",
                         "in init_process_group"],
    "exit": ["DistributedError: all_reduce: " + _LEFT.format(how="its process exited"),
             "Stack of rank 0's main thread, waiting in all_reduce:",
             'faults.py", line', "rank 0 of 2 cannot complete a collective; calling MPI_Abort"],
    "return": ["DistributedError: all_reduce: " + _LEFT.format(how="its process exited")],
    "destroy": ["DistributedError: all_reduce: "
                + _LEFT.format(how="it called destroy_process_group()")],
    "kill": ["Killed (signal 9)"],  # MPICH's mpiexec itself ends the job
    "skip": ["DistributedError: all_reduce: " + _TIMED_OUT,
             "init_process_group(timeout=...) or NEEDLE_DIST_TIMEOUT",
             "rank 0 of 2 cannot complete a collective; calling MPI_Abort"],
    "late-call": ["caught: all_reduce: " + _LEFT.format(how="its process exited"),
                  "rank 0 of 2 exits after the process group failed (all_reduce: rank 1 left",
                  "calling MPI_Abort to end every rank"],
    "ddp-exit": ["DistributedError: DistributedDataParallel: rank 1 left the process group "
                 "(its process exited)", "in end_pass"],
    "ddp-skip": ["DistributedError: DistributedDataParallel: " + _TIMED_OUT, "in end_pass"],
}


@pytest.fixture(scope="module")
def fault_runs():
    """Every run of faults.py at once (most of their time is waiting): mode -> (status,
    output, seconds, hung)."""
    if _MISSING:
        pytest.skip(needs_mpi.kwargs["reason"])
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    procs = {}
    for mode in [*_FAULTS, "uneven-end"]:
        mode_env = dict(env, NEEDLE_DIST_TIMEOUT="2") if mode == "exit-before-init" else env
        procs[mode] = (time.perf_counter(), subprocess.Popen(
            [str(MPIEXEC), "-n", "2", sys.executable, str(SCRIPTS / "faults.py"), mode],
            cwd=ROOT, env=mode_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True))
    results = {}
    deadline = time.perf_counter() + 60
    for mode, (started, proc) in procs.items():
        hung = False
        try:
            out, _ = proc.communicate(timeout=max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            hung = True
        results[mode] = (proc.returncode, out, time.perf_counter() - started, hung)
    return results


@needs_mpi
@pytest.mark.parametrize("mode", list(_FAULTS))
def test_a_fault_on_one_rank_ends_the_job_quickly_saying_why(fault_runs, mode):
    code, out, seconds, hung = fault_runs[mode]
    assert not hung, f"still running after 60 s:\n{out}"
    assert code != 0, out
    assert seconds < 30, (seconds, out)
    for expected in _FAULTS[mode]:
        assert expected in out, (expected, out)
    if mode in ("raise", "raise-before-init"):
        assert "Traceback (most recent call last)" in out
    if "skip" in mode or mode == "exit-before-init":
        assert seconds > 2  # the timeout, not something else, ended it


@needs_mpi
def test_ranks_that_end_at_different_times_are_no_fault(fault_runs):
    code, out, _, hung = fault_runs["uneven-end"]
    assert not hung and code == 0, out
    assert out == ""


@needs_mpi
def test_models_that_differ_across_ranks_are_an_error_on_every_rank(tmp_path):
    code, out, err, _ = mpirun([str(SCRIPTS / "faults.py"), "mismatch", str(tmp_path)],
                               timeout=60)
    assert code == 0, out + err
    messages = [(tmp_path / f"rank{r}.txt").read_text() for r in range(2)]
    for message in messages:
        assert message.startswith("ShapeError: DistributedDataParallel: the model differs")
        assert "rank 1 has parameter 'modules.0.weight' of shape (4, 6)" in message
        assert "rank 0 has parameter 'modules.0.weight' of shape (4, 5)" in message
    code, out, err, seconds = mpirun([str(SCRIPTS / "faults.py"), "mismatch-uncaught"],
                                     timeout=60)
    assert code != 0 and seconds < 30
    assert "ShapeError: DistributedDataParallel: the model differs across ranks" in err


@needs_mpi
@pytest.mark.parametrize("mode", ["mpi", "nompi"])
def test_a_world_of_one_without_mpiexec(tmp_path, mode):
    out_file = tmp_path / "out.json"
    code, out, err, _ = _run([sys.executable, str(SCRIPTS / "world_of_one.py"), mode,
                              str(out_file)], timeout=60)
    assert code == 0, out + err
    got = json.loads(out_file.read_text())
    assert got["initialized"] and got["rank"] == 0 and got["world"] == 1
    assert got["mpi4py_loaded"] == (mode == "mpi")
    assert got["collectives_change"] == 0.0
    assert got["all_gather"] == [[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]]
    assert got["ddp_vs_plain"] == 0.0  # DDP over one process is plain training
    assert got["sampler"] == [1, 0, 10]
    assert got["after_destroy"] is False
    assert "not initialised" in got["get_rank_after_destroy"]


# ----------------------------------------------------------------------------------------------
# The app


@needs_mpi
def test_train_mnist_on_two_ranks_matches_one_process(tmp_path):
    args = ["-m", "apps.train_mnist", "--distributed", "--epochs", "2", "--hidden-dim", "32",
            "--source", "digits", "--no-download", "--norm", "none", "--drop-prob", "0",
            "--dtype", "float64"]
    one, two = tmp_path / "one", tmp_path / "two"
    code, out1, err1, _ = _run([sys.executable, *args, "--out-dir", str(one)], timeout=120)
    assert code == 0, out1 + err1
    code, out2, err2, _ = mpirun([*args, "--out-dir", str(two)], timeout=120)
    assert code == 0, out2 + err2
    m1 = json.loads((one / "metrics.json").read_text())
    m2 = json.loads((two / "metrics.json").read_text())
    assert (m1["world_size"], m2["world_size"]) == (1, 2)
    for h1, h2 in zip(m1["history"], m2["history"], strict=True):
        for key in ("train_loss", "test_loss"):
            assert h2[key] == pytest.approx(h1[key], rel=1e-9, abs=1e-12), (key, h1, h2)
        assert h2["train_acc"] == h1["train_acc"] and h2["test_acc"] == h1["test_acc"]
        assert h2["allreduce_ms_per_step"] >= 0
    assert m2["restored_test_acc"] == m2["test_acc"]
    # rank 0 alone prints the table and writes the files
    assert out2.count("| epoch | lr |") == 1 and out2.count("checkpoint:") == 1
    assert "2 processes over MPI, each global batch of 64 split into 2 x 32" in out2
    plot = ["curves.png"] if importlib.util.find_spec("matplotlib") else []  # [apps] extra
    assert sorted(p.name for p in two.iterdir()) == plot + ["metrics.json", "mlp_resnet.npz"]


# ----------------------------------------------------------------------------------------------
# 3. DistributedSampler (no MPI)


def _shards(n, world, seed=0, epoch=0, shuffle=True, drop_last=False):
    out = []
    for rank in range(world):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle,
                                     seed=seed, drop_last=drop_last)
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


@given(n=st.integers(0, 300), world=st.integers(1, 9), seed=st.integers(0, 2**31),
       epoch=st.integers(0, 1000), shuffle=st.booleans())
def test_sampler_shards_cover_the_data_set_with_padding(n, world, seed, epoch, shuffle):
    shards = _shards(n, world, seed, epoch, shuffle)
    per_rank = -(-n // world)
    assert all(len(s) == per_rank for s in shards)
    counts = np.bincount(np.concatenate([np.array(s, dtype=int) for s in shards]),
                         minlength=n) if n else np.zeros(0)
    assert all(0 <= i < n for s in shards for i in s)
    assert np.all(counts >= 1)  # every sample is in some shard
    # the padding repeats (world * per_rank - n) indices: each at most once per pass
    assert counts.sum() == world * per_rank
    assert np.all(counts <= 1 + -(-(world * per_rank - n) // max(n, 1)))
    if n % world == 0:
        assert np.all(counts == 1)  # no padding: disjoint


@given(n=st.integers(0, 300), world=st.integers(1, 9), seed=st.integers(0, 2**31),
       shuffle=st.booleans())
def test_sampler_drop_last_gives_disjoint_equal_shards(n, world, seed, shuffle):
    shards = _shards(n, world, seed, shuffle=shuffle, drop_last=True)
    assert all(len(s) == n // world for s in shards)
    flat = [i for s in shards for i in s]
    assert len(set(flat)) == len(flat) == world * (n // world)


@given(n=st.integers(10, 300), world=st.integers(1, 9), seed=st.integers(0, 2**31))
def test_sampler_is_the_same_on_every_rank_and_changes_with_the_epoch(n, world, seed):
    first = _shards(n, world, seed, epoch=3)
    np.random.seed(12345)  # numpy's global RNG plays no part
    np.random.rand(7)
    assert _shards(n, world, seed, epoch=3) == first
    # the ranks agree on one order of the data set: rank r holds its r-th, (r+world)-th...
    order = [first[k % world][k // world] for k in range(world * len(first[0]))]
    assert sorted(order[:n]) == list(range(n))
    assert _shards(n, world, seed, epoch=4) != first
    assert _shards(n, world, seed + 1, epoch=3) != first


def test_sampler_without_shuffle_interleaves_in_order():
    assert _shards(7, 3, shuffle=False) == [[0, 3, 6], [1, 4, 0], [2, 5, 1]]
    assert _shards(7, 3, shuffle=False, drop_last=True) == [[0, 3], [1, 4], [2, 5]]
    assert len(DistributedSampler(range(7), num_replicas=3, rank=0)) == 3


def test_sampler_arguments_are_checked():
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\), got 2"):
        DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be a positive int"):
        DistributedSampler(range(4), num_replicas=0, rank=0)
    with pytest.raises(dist.DistributedError, match="not initialised"):
        DistributedSampler(range(4))  # no process group to ask


def test_data_loader_follows_the_sampler():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    dataset = ndl.data.NDArrayDataset(X)
    sampler = DistributedSampler(dataset, num_replicas=2, rank=1, seed=5)
    sampler.set_epoch(2)
    loader = ndl.data.DataLoader(dataset, batch_size=2, sampler=sampler)
    batches = [b[0].numpy() for b in loader]
    assert len(loader) == len(batches) == 3 and [len(b) for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate(batches), X[list(sampler)])
    assert [b[0].numpy().tolist() for b in loader] == [b.tolist() for b in batches]
    with pytest.raises(ValueError, match="mutually exclusive"):
        ndl.data.DataLoader(dataset, batch_size=2, shuffle=True, sampler=sampler)
    with pytest.raises(TypeError, match="has no len"):
        ndl.data.DataLoader(dataset, batch_size=2, sampler=iter([0, 1]))


def test_data_loader_without_sampler_draws_as_before():
    # One np.random.permutation per epoch from the global RNG (Needle's golden order).
    dataset = ndl.data.NDArrayDataset(np.arange(100, dtype=np.float32))
    np.random.seed(0)
    first = next(iter(ndl.data.DataLoader(dataset, batch_size=4, shuffle=True)))[0]
    assert first.numpy().tolist() == [26.0, 86.0, 2.0, 55.0]


# ----------------------------------------------------------------------------------------------
# Argument checks in this process (the single-process stand-in, no MPI)


@pytest.fixture
def no_mpi(monkeypatch):
    """A process group of one through the stand-in for a missing mpi4py."""
    monkeypatch.setattr(dist, "_load_mpi", lambda: None)
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "NEEDLE_DIST_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_process_group_lifecycle_errors(no_mpi):
    with pytest.raises(dist.DistributedError, match="get_rank: the process group is not"):
        dist.get_rank()
    with pytest.raises(dist.DistributedError, match="not initialised"):
        dist.all_reduce(ndl.Tensor([1.0]))
    with pytest.raises(dist.DistributedError, match="not initialised"):
        ndl.nn.parallel.DistributedDataParallel(ndl.nn.Linear(2, 2))
    with pytest.raises(dist.DistributedError, match="unknown backend 'nccl'"):
        dist.init_process_group("nccl")
    dist.init_process_group()
    assert dist.is_initialized() and dist.get_world_size() == 1 and dist.get_rank() == 0
    with pytest.raises(dist.DistributedError, match="already initialised"):
        dist.init_process_group()
    with pytest.raises(dist.DistributedError, match="op must be a ReduceOp"):
        dist.all_reduce(ndl.Tensor([1.0]), op="sum")
    with pytest.raises(dist.DistributedError, match=r"src must be a rank in \[0, 1\)"):
        dist.broadcast(ndl.Tensor([1.0]), src=1)
    with pytest.raises(ndl.DTypeError, match="expected a needle Tensor, got str"):
        dist.all_reduce("not a tensor")
    if ndl.BACKEND == "np":  # the nd backend holds floats only
        with pytest.raises(ndl.DTypeError, match="float32 or float64, got int64"):
            dist.all_reduce(ndl.Tensor(np.arange(3)))
    with pytest.raises(ndl.ShapeError, match=r"tensor_list\[0\] has shape \(2,\)"):
        dist.all_gather([ndl.Tensor([1.0, 2.0])], ndl.Tensor([1.0]))
    dist.destroy_process_group()
    assert not dist.is_initialized()


def test_the_timeout_comes_from_the_argument_or_the_environment(no_mpi, monkeypatch):
    def timeout_after_init(**kwargs):
        dist.init_process_group(**kwargs)
        try:
            return dist._WORLD.timeout
        finally:
            dist.destroy_process_group()

    assert timeout_after_init() == 300.0
    assert timeout_after_init(timeout=2.5) == 2.5
    assert timeout_after_init(timeout=datetime.timedelta(minutes=2)) == 120.0
    assert timeout_after_init(timeout=float("inf")) == float("inf")
    monkeypatch.setenv("NEEDLE_DIST_TIMEOUT", "7")
    assert timeout_after_init() == 7.0
    assert timeout_after_init(timeout=3) == 3.0  # the argument wins
    for bad, message in [("soon", "NEEDLE_DIST_TIMEOUT='soon' must be a positive number"),
                         ("-1", "NEEDLE_DIST_TIMEOUT='-1' must be a positive number"),
                         ("nan", "NEEDLE_DIST_TIMEOUT='nan' must be a positive number")]:
        monkeypatch.setenv("NEEDLE_DIST_TIMEOUT", bad)
        with pytest.raises(dist.DistributedError, match=message):
            dist.init_process_group()
    monkeypatch.delenv("NEEDLE_DIST_TIMEOUT")
    for bad, message in [(0, "timeout=0 must be a positive number of seconds"),
                         (datetime.timedelta(0), r"timeout=datetime.timedelta\(0\) must be"),
                         ("10", "timeout must be a datetime.timedelta or a number of seconds, "
                                "got str"),
                         (True, "got bool")]:
        with pytest.raises(dist.DistributedError, match=message):
            dist.init_process_group(timeout=bad)
    assert not dist.is_initialized()


def test_launched_by_mpiexec_without_mpi4py_is_an_error(no_mpi, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "4")
    assert dist.launched_world_size() == 4
    with pytest.raises(dist.DistributedError, match="one of 4 processes, but mpi4py is not"):
        dist.init_process_group()
    assert not dist.is_initialized()


def test_ddp_in_a_world_of_one_in_process(no_mpi):
    dist.init_process_group()

    def mlp():
        np.random.seed(0)
        return ndl.nn.Sequential(ndl.nn.Linear(3, 4, dtype="float64"), ndl.nn.ReLU(),
                                 ndl.nn.Linear(4, 2, dtype="float64"))

    rng = np.random.default_rng(0)
    batches = [(ndl.Tensor(rng.standard_normal((6, 3)), dtype="float64"),
                ndl.Tensor(rng.integers(0, 2, 6), dtype="float64")) for _ in range(3)]
    plain, wrapped = mlp(), ndl.nn.parallel.DistributedDataParallel(mlp(), bucket_cap_mb=1e-4)
    # 104-byte buckets of float64: (last bias, last weight), (first bias), (first weight)
    assert wrapped.num_buckets == 3 and "world_size=1" in repr(wrapped)
    assert list(wrapped.state_dict()) == list(plain.state_dict())
    for model in (plain, wrapped):
        opt = ndl.optim.SGD(model.parameters(), lr=0.5)
        for X, y in batches:
            opt.reset_grad()
            ndl.nn.SoftmaxLoss()(model(X), y).backward()
            opt.step()
    for p, q in zip(plain.parameters(), wrapped.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    # no_sync: the sum over the passes, then one more (synchronised) pass adds to it
    grads = []
    for X, y in batches:
        plain.parameters()[0].grad = None
        ndl.nn.SoftmaxLoss()(plain(X), y).backward()
        grads.append(plain.parameters()[0].grad.numpy())
    first = wrapped.parameters()[0]
    first.grad = None
    with wrapped.no_sync():
        for X, y in batches[:2]:
            ndl.nn.SoftmaxLoss()(wrapped(X), y).backward()
    np.testing.assert_allclose(first.grad.numpy(), grads[0] + grads[1], rtol=1e-12)
    ndl.nn.SoftmaxLoss()(wrapped(batches[2][0]), batches[2][1]).backward()
    np.testing.assert_allclose(first.grad.numpy(), sum(grads), rtol=1e-12)
    assert wrapped.comm_stats()["rounds"] == 4
    # function transforms run the reverse pass without backward(): DDP stays out of it
    x = batches[0][0]
    g = ndl.functional.grad(lambda w: (x @ w).sum())(wrapped.parameters()[0])
    np.testing.assert_allclose(g.numpy(), np.repeat(x.numpy().sum(0)[:, None], 4, axis=1))
    assert wrapped.comm_stats()["rounds"] == 4


@needs_mpi
def test_allreduce_benchmark_runs(tmp_path):
    # No timing asserted (that is the benchmark's job); only that it measures every path
    # and writes its report where it is told (the default, runs/, is untracked).
    code, out, err, _ = _run([sys.executable, "-m", "bench.bench_allreduce", "--repeat", "1",
                              "--max-mb", "0.004", "--out", str(tmp_path)], timeout=120)
    assert code == 0, out + err
    report = json.loads((tmp_path / "allreduce.json").read_text())
    assert report["world"] == 2 and [r["bytes"] for r in report["rows"]] == [1024, 4096]
    for row in report["rows"]:
        assert set(row["seconds"]) == {"mpi4py Allreduce", "needle all_reduce", "unchecked",
                                       "DDP bucket"}
        assert all(t > 0 for t in row["seconds"].values())
    assert "| 1 KB |" in (tmp_path / "allreduce.md").read_text()
