"""Install needle: ``pip install -e .`` (extras: test, distributed, apps, bench, oracle, viz, docs)."""

from setuptools import find_packages, setup

setup(
    name="needle",
    version="0.1.0",
    description="An eager, tape-based autodiff tensor library over numpy (Needle-compatible).",
    package_dir={"": "python"},
    packages=find_packages("python"),
    python_requires=">=3.11",
    install_requires=["numpy>=1.24"],
    extras_require={
        # graphviz renders needle.viz pictures; pydot parses DOT text back in the tests.
        "test": ["pytest>=7", "hypothesis>=6", "scikit-learn", "graphviz", "pydot"],
        # MPI from wheels, no compiler: mpi4py's wheel loads the MPICH library of the mpich
        # wheel, which also ships mpiexec (hydra).
        "distributed": ["mpi4py>=4.1", "mpich>=4.3"],
        "apps": ["tqdm", "matplotlib", "scikit-learn"],
        "bench": ["torch==2.13.0", "autograd", "matplotlib", "threadpoolctl", "psutil",
                  "scikit-learn"],
        "oracle": ["torch==2.13.0"],
        "viz": ["graphviz"],
        "docs": ["pdoc>=14"],
        "dev": ["ruff"],
    },
)
