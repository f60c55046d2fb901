"""``graph.Evaluator`` through the jit's compiler: one schedule per signature of the feeds.

A graph needs no tracing: its nodes already are the flat list of ops. The first run of a
signature (the fed arrays' shapes, dtypes and layouts) evaluates the graph node by node as
``Evaluator`` always did; those values give every slot its meta and its check, and the
same passes and kernels as ``ndl.jit`` make the schedule that later runs replay.
"""

from __future__ import annotations

import threading

import numpy as np

from .._fp import call_quietly
from ._program import CompileError, compile_program
from ._record import INPUT, OP, STATE, Slot, raw_of


class GraphSchedule:
    """The compiled evaluation of ``eval_nodes`` for one signature of the feeds."""

    def __init__(self, order: list, eval_nodes: list, fed: dict, values: dict,
                 devices: dict) -> None:
        slots: list[Slot] = []
        index: dict = {}
        entries: list[tuple] = []
        self.inputs: list = []  # (slot, node)
        self.states: list = []  # (slot, node, meta)
        for node in order:
            data = values[node]
            raw = raw_of(data)
            if node in fed:
                kind = INPUT
            elif node.op is None:
                kind = STATE
            else:
                kind = OP
            slot = Slot(len(slots), kind, raw, devices[node], False)
            slots.append(slot)
            index[node] = slot.index
            if kind == INPUT:
                self.inputs.append((slot.index, node))
            elif kind == STATE:
                slot.source = node
                meta = None if raw.__class__ is tuple else slot.meta[:3]
                self.states.append((slot.index, node, meta))
            else:
                slot.source = len(entries)
                entries.append((node.op, tuple(index[x] for x in node.inputs), slot.index))
        roots = [index[n] for n in eval_nodes]
        self.compiled = compile_program(slots, entries, roots)
        canon = self.compiled.canon
        self.outs = [canon[r] for r in roots]
        # An output that is a constant, a feed, a leaf of the graph or a view of one, or
        # that appears twice, is copied: every run returns arrays of its own.
        own = self.compiled.fresh_roots
        seen: set = set()
        self.copy = []
        for s, node in zip(self.outs, eval_nodes):
            device = devices[node]
            # A host copy of the value (a numpy array of its own: copied if need be).
            host = None if device.xp is np else device.to_numpy
            self.copy.append(host or (np.array if s in seen or s not in own else None))
            seen.add(s)
        self.lock = threading.Lock()

    def run(self, arrays: dict) -> list[np.ndarray] | None:
        """The eval nodes' values for ``arrays`` (fed node -> (namespace array, device)), as
        numpy arrays, or None when a leaf of the graph no longer has the layout it was
        compiled for."""
        c = self.compiled
        with self.lock:
            E = list(c.template)
            for slot, node in self.inputs:
                E[slot] = arrays[node][0]
            for slot, node, meta in self.states:
                data = node._data
                if data is None:
                    return None
                raw = raw_of(data)
                if meta is not None and (raw.shape != meta[0] or raw.dtype != meta[1]
                                         or raw.strides != meta[2]):
                    return None
                E[slot] = raw
            call_quietly(c.run, E)
            return [E[s] if cp is None else cp(E[s]) for s, cp in zip(self.outs, self.copy)]


def signature(order_fed: list, arrays: dict) -> tuple:
    """The key of a feed: each fed node's array shape, dtype and strides, in graph order."""
    out = []
    for node in order_fed:
        raw = arrays[node][0]
        out.append((id(node), raw.shape, raw.dtype.str, raw.strides))
    return tuple(out)


def build(order: list, eval_nodes: list, fed: dict, values: dict,
          devices: dict) -> GraphSchedule | None:
    """The compiled schedule of this evaluation (None when it cannot be compiled)."""
    try:
        return GraphSchedule(order, eval_nodes, fed, values, devices)
    except CompileError:
        return None
