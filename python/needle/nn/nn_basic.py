"""The basic nn modules: Parameter, Module, and the layers of an MLP."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from .. import init, ops
from ..autograd import Tensor, no_grad
from ..errors import CheckpointError, DTypeError, NeedleError, ShapeError
from ..hooks import RemovableHandle, add_hook

__all__ = [
    "Parameter", "Module", "Identity", "Linear", "Flatten", "ReLU", "Tanh", "Sigmoid",
    "Sequential", "SoftmaxLoss", "BatchNorm1d", "BatchNorm2d", "LayerNorm1d", "Dropout",
    "Residual",
]


class Parameter(Tensor):
    """A Tensor that is a trainable parameter: only these are returned by ``parameters()``."""


def _unpack_params(value: Any) -> list[Tensor]:
    """Every Parameter inside ``value`` (Modules, dicts, lists, tuples), in definition order."""
    if isinstance(value, Parameter):
        return [value]
    if isinstance(value, Module):
        return value.parameters()
    if isinstance(value, dict):
        return [p for v in value.values() for p in _unpack_params(v)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _unpack_params(v)]
    return []


def _child_modules(value: Any) -> list[Module]:
    """Every Module inside ``value``, recursively (children before grandchildren)."""
    if isinstance(value, Module):
        return [value] + _child_modules(value.__dict__)
    if isinstance(value, dict):
        return [m for v in value.values() for m in _child_modules(v)]
    if isinstance(value, (list, tuple)):
        return [m for v in value for m in _child_modules(v)]
    return []


def _named_items(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted name, item) for the Modules and Tensors directly inside a container value."""
    if isinstance(value, (Module, Tensor)):
        yield prefix, value
    elif isinstance(value, dict):
        for key, v in value.items():
            yield from _named_items(v, f"{prefix}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _named_items(v, f"{prefix}.{i}")


class _ModuleHooks:
    """A module's forward pre-hooks and forward hooks, by handle id in registration order."""

    __slots__ = ("pre", "post")

    def __init__(self) -> None:
        self.pre: dict = {}
        self.post: dict = {}


def _name_module_in_error(error: NeedleError, module: Module) -> None:
    """Prefix ``error``'s message with the module it passed through, keeping its type.

    Nested modules build a path, ``Sequential[1] > Residual > Linear: <message>``. A
    message that already starts with the innermost module's name (the modules' own input
    checks) is not prefixed twice. The exception is updated in place and re-raised by the
    caller, so its type and traceback are kept.
    """
    name = type(module).__name__
    child = error.__dict__.pop("_needle_child", None)
    if child is not None and child[0] is module:
        name = f"{name}[{child[1]}]"
    path = error.__dict__.get("_needle_path")
    if path is None:
        if not error.args or not isinstance(error.args[0], str):
            return
        body = error.args[0]
        own = type(module).__name__ + ": "
        if body.startswith(own):
            body = body[len(own):]
        error._needle_body = body
        error._needle_path = path = [name]
    else:
        path.insert(0, name)
    error.args = (" > ".join(path) + ": " + error._needle_body,) + error.args[1:]


class _LoadResult(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer and model.

    Attributes assigned in ``__init__`` (Parameters, sub-Modules, and lists, tuples
    or dicts of them) are found automatically by ``parameters()``, ``train()``,
    ``eval()``, ``state_dict()`` and ``repr``.
    """

    def __init__(self) -> None:
        self.training = True

    # -- traversal -----------------------------------------------------------------------------

    def parameters(self) -> list[Tensor]:
        """The Parameters of this module and its children, each once, in definition order."""
        seen: set[int] = set()
        out = []
        for p in _unpack_params(self.__dict__):
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    def _children(self) -> list[Module]:
        """Every sub-Module, recursively."""
        return _child_modules(self.__dict__)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) of the direct sub-Modules (list items are named ``attr.i``)."""
        for attr, value in self.__dict__.items():
            for name, item in _named_items(value, attr):
                if isinstance(item, Module):
                    yield name, item

    def children(self) -> Iterator[Module]:
        """The direct sub-Modules, each once, in definition order (PyTorch's ``children``)."""
        seen: set[int] = set()
        for _, module in self.named_children():
            if id(module) not in seen:
                seen.add(id(module))
                yield module

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module (named ``prefix``, ``""`` by default) and
        every sub-Module, each once, parents before their children.

        Sub-Modules in lists, tuples and dicts are found as ``parameters()`` finds them and
        named like ``state_dict`` keys: ``"modules.0"``, ``"blocks.2.fn"``.
        """
        seen: set[int] = set()
        # An explicit stack (children pushed in reverse) gives the depth-first pre-order; a
        # module reached twice keeps the name of its first visit, as in parameters().
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            stack.extend(reversed([(f"{name}.{child_name}" if name else child_name, child)
                                   for child_name, child in module.named_children()]))

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) of every Parameter, each once, in the order of
        ``parameters()``; the names are the ``state_dict`` keys (``"modules.0.weight"``)."""
        seen: set[int] = set()
        start = f"{prefix}." if prefix else ""
        for name, tensor in self._named_tensors(start):
            if isinstance(tensor, Parameter) and id(tensor) not in seen:
                seen.add(id(tensor))
                yield name, tensor

    def _named_tensors(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) of every Parameter and buffer, recursively."""
        buffers = self.__dict__.get("_buffers", ())
        for attr, value in self.__dict__.items():
            for name, item in _named_items(value, attr):
                if isinstance(item, Module):
                    yield from item._named_tensors(f"{prefix}{name}.")
                elif isinstance(item, Parameter) or (name == attr and attr in buffers):
                    yield f"{prefix}{name}", item

    def register_buffer(self, name: str, tensor: Tensor) -> None:
        """Set ``self.name = tensor`` as a buffer: saved in ``state_dict`` but not trained."""
        if "_buffers" not in self.__dict__:
            self._buffers: set[str] = set()
        self._buffers.add(name)
        setattr(self, name, tensor)

    def num_parameters(self) -> int:
        """Total number of scalar entries over all Parameters."""
        return int(sum(np.prod(p.shape, dtype=np.int64) for p in self.parameters()))

    # -- modes and calling ---------------------------------------------------------------------

    def eval(self) -> Module:
        """Evaluation mode (BatchNorm uses running statistics, Dropout is the identity)."""
        self.training = False
        for m in self._children():
            m.training = False
        return self

    def train(self) -> Module:
        """Training mode (the default)."""
        self.training = True
        for m in self._children():
            m.training = True
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the module's output; subclasses define it, ``module(x)`` calls it."""
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # A needle error raised anywhere inside forward names this module on its way out
        # (free unless something is raised).
        try:
            hooks = self._hooks
            if hooks is None or not (hooks.pre or hooks.post):
                return self.forward(*args, **kwargs)
            for hook in list(hooks.pre.values()):
                replaced = hook(self, args)
                if replaced is not None:
                    args = replaced if isinstance(replaced, tuple) else (replaced,)
            output = self.forward(*args, **kwargs)
            for hook in list(hooks.post.values()):
                replaced = hook(self, args, output)
                if replaced is not None:
                    output = replaced
            return output
        except NeedleError as e:
            _name_module_in_error(e, self)
            raise

    # -- hooks ---------------------------------------------------------------------------------

    # A holder object, not a dict attribute, so the traversals above never walk the hooks.
    _hooks: _ModuleHooks | None = None

    def _hook_registry(self) -> _ModuleHooks:
        if self._hooks is None:
            self._hooks = _ModuleHooks()
        return self._hooks

    def register_forward_pre_hook(self, hook: Any) -> RemovableHandle:
        """Call ``hook(module, args)`` before every ``forward``.

        A return value other than None replaces the positional arguments (a tuple, or a
        single value that is wrapped in one).

        Returns
        -------
        RemovableHandle
            ``handle.remove()`` unregisters the hook.
        """
        return add_hook(self._hook_registry().pre, hook, "register_forward_pre_hook")

    def register_forward_hook(self, hook: Any) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after every ``forward``.

        A return value other than None replaces the output.

        Returns
        -------
        RemovableHandle
            ``handle.remove()`` unregisters the hook.
        """
        return add_hook(self._hook_registry().post, hook, "register_forward_hook")

    # -- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Parameters and buffers (e.g. BatchNorm running statistics) by dotted name.

        Returns
        -------
        OrderedDict of str to numpy.ndarray
            Copies of the values, e.g. ``{"modules.0.weight": ..., "modules.1.running_mean": ...}``;
            save it with ``needle.save``.
        """
        return OrderedDict((name, t.numpy()) for name, t in self._named_tensors())

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> _LoadResult:
        """Copy values from ``state_dict`` into this module's parameters and buffers.

        Everything is checked before anything is written, so on error the module is
        left untouched.

        Parameters
        ----------
        state_dict : dict of str to array or Tensor
            As returned by :meth:`state_dict` (or ``needle.load``).
        strict : bool
            When True, missing and unexpected keys are errors; otherwise they are reported.

        Returns
        -------
        (missing_keys, unexpected_keys)

        Raises
        ------
        CheckpointError
            Missing or unexpected keys (strict).
        ShapeError, DTypeError
            A value whose shape or dtype differs from the module's; the message names
            the key and both shapes (or dtypes). Shapes that differ only in leading
            size-1 axes are accepted (a Linear bias saved as (out,) loads into today's
            (1, out)).
        """
        own = dict(self._named_tensors())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise CheckpointError(f"load_state_dict: {'; '.join(parts)}")
        updates = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
            if _same_but_leading_ones(tuple(array.shape), target.shape):
                array = array.reshape(target.shape)
            if tuple(array.shape) != target.shape:
                raise ShapeError(
                    f"load_state_dict: shape mismatch for {key!r}: checkpoint has "
                    f"{tuple(array.shape)}, model has {target.shape}"
                )
            if np.dtype(array.dtype) != np.dtype(target.dtype):
                raise DTypeError(
                    f"load_state_dict: dtype mismatch for {key!r}: checkpoint has "
                    f"{array.dtype}, model has {target.dtype} (shape {target.shape})"
                )
            updates.append((target, array))
        for target, array in updates:
            target.data = Tensor(array, device=target.device, dtype=target.dtype,
                                 requires_grad=False)
        return _LoadResult(missing, unexpected)

    # -- printing ------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The text inside ``Name(...)`` for a module without children."""
        return ""

    def _repr_children(self) -> Iterator[tuple[str, Module]]:
        return self.named_children()

    def __repr__(self) -> str:
        lines = []
        for name, child in self._repr_children():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"


def _same_but_leading_ones(a: tuple, b: tuple) -> bool:
    """Whether shapes ``a`` and ``b`` differ only in leading size-1 axes, e.g. a Linear bias
    saved as (out,) by older needle versions and the (1, out) one of today."""
    def strip(shape: tuple) -> tuple:
        i = 0
        while i < len(shape) and shape[i] == 1:
            i += 1
        return shape[i:]
    return strip(a) == strip(b)


class Identity(Module):
    """Returns its input."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class Linear(Module):
    """``y = x @ weight + bias``, over the last axis of an input of any rank.

    ``weight`` (in_features, out_features) and ``bias`` (1, out_features) are drawn
    with :func:`init.kaiming_uniform` (fan_in = in_features and out_features),
    weight first. A 1-D ``(out_features,)`` bias assigned later (``lin.bias.data = t``)
    works as well.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(
            init.kaiming_uniform(in_features, out_features, device=device, dtype=dtype)
        )
        self.bias = None
        if bias:
            # The course draws (out, 1) uniforms with fan_in = out and reshapes them to
            # (1, out): the same numbers in the same order as drawing (1, out) directly.
            self.bias = Parameter(init.kaiming_uniform(
                out_features, 1, shape=(1, out_features), device=device, dtype=dtype
            ))

    def forward(self, X: Tensor) -> Tensor:
        if X.shape[-1] != self.in_features:
            raise ShapeError(
                f"Linear: input of shape {X.shape} has {X.shape[-1]} features, "
                f"expected {self.in_features}"
            )
        shape = X.shape
        flat = X.reshape((int(np.prod(shape[:-1])), shape[-1])) if len(shape) != 2 else X
        out = flat @ self.weight
        if self.bias is not None:
            bias = self.bias
            if bias.shape != (1, self.out_features):
                if int(np.prod(bias.shape)) != self.out_features:
                    raise ShapeError(f"Linear: bias of shape {bias.shape} does not fit "
                                     f"out_features={self.out_features}")
                bias = bias.reshape((1, self.out_features))
            out = out + ops.broadcast_to(bias, out.shape)
        if len(shape) != 2:
            out = out.reshape(shape[:-1] + (self.out_features,))
        return out

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """(B, d1, d2, ...) -> (B, d1 * d2 * ...)."""

    def forward(self, X: Tensor) -> Tensor:
        shape = X.shape
        if not shape:
            raise ShapeError("Flatten: expected an input of shape (batch, ...), got a 0-d tensor")
        return X.reshape((shape[0], int(np.prod(shape[1:]))))


class ReLU(Module):
    """max(0, x)."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(x)


class Tanh(Module):
    """tanh(x)."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.tanh(x)


class Sigmoid(Module):
    """1 / (1 + exp(-x))."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.sigmoid(x)


class Sequential(Module):
    """Applies ``modules`` in order; they are kept in ``self.modules``."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                if isinstance(m, type) and issubclass(m, Module):
                    what = f"the class {m.__name__}, not a module; write {m.__name__}(...)"
                elif isinstance(m, (list, tuple)):
                    what = (f"a {type(m).__name__}, not a Module; pass the modules as "
                            "separate arguments: Sequential(*modules)")
                else:
                    what = f"a {type(m).__name__}, not a Module"
                raise TypeError(f"Sequential: argument {i} is {what}")
        self.modules = modules

    def forward(self, x: Tensor) -> Tensor:
        for i, module in enumerate(self.modules):
            try:
                x = module(x)
            except NeedleError as e:
                # Lets Module.__call__ name the failing child as Sequential[i].
                e._needle_child = (self, i)
                raise
        return x

    def _repr_children(self) -> Iterator[tuple[str, Module]]:
        return ((str(i), m) for i, m in enumerate(self.modules))

    def __len__(self) -> int:
        return len(self.modules)

    def __getitem__(self, index: int) -> Module:
        return self.modules[index]


class SoftmaxLoss(Module):
    """Mean cross-entropy of ``logits`` (batch, classes) against integer labels ``y``."""

    def forward(self, logits: Tensor, y: Tensor) -> Tensor:
        if len(logits.shape) != 2:
            raise ShapeError(f"SoftmaxLoss: logits must be (batch, classes), got {logits.shape}")
        batch, classes = logits.shape
        y_shape = tuple(np.shape(y))
        if y_shape != (batch,):
            raise ShapeError(f"SoftmaxLoss: logits of shape {logits.shape} need labels of "
                             f"shape ({batch},) (one class id per row), got labels of shape "
                             f"{y_shape}")
        y_one_hot = init.one_hot(classes, y, device=logits.device, dtype=logits.dtype)
        lse = ops.logsumexp(logits, axes=(1,))
        true_logit = (logits * y_one_hot).sum(axes=(1,))
        return (lse - true_logit).sum() / batch


def _keep_last(stat: Tensor, shape: tuple) -> Tensor:
    """Broadcast a per-feature (dim,) vector over a (..., dim) shape."""
    return ops.broadcast_to(stat.reshape((1,) * (len(shape) - 1) + (shape[-1],)), shape)


class BatchNorm1d(Module):
    """Batch normalisation over the batch axis of (batch, dim) inputs.

    Training normalises with the batch mean and biased variance and updates
    ``running_mean``/``running_var`` (buffers, not Parameters) as
    ``(1 - momentum) * running + momentum * batch_stat``; evaluation uses the running values.
    """

    def __init__(
        self,
        dim: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.momentum = momentum
        self.weight = Parameter(init.ones(dim, device=device, dtype=dtype, requires_grad=True))
        self.bias = Parameter(init.zeros(dim, device=device, dtype=dtype, requires_grad=True))
        self.register_buffer("running_mean", init.zeros(dim, device=device, dtype=dtype))
        self.register_buffer("running_var", init.ones(dim, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        if len(x.shape) != 2 or x.shape[1] != self.dim:
            raise ShapeError(f"{type(self).__name__}: expected input (batch, {self.dim}), "
                             f"got {x.shape}")
        shape = x.shape
        if self.training:
            # One node each (ops.ops_norm), with the float operations of the composition
            # ``(x - mean) / (var + eps) ** 0.5 * weight + bias``: far fewer nodes per step.
            m = self.momentum
            with no_grad():
                data = x.detach()
                self.running_mean = ops.running_stat(self.running_mean, data, m, "mean")
                self.running_var = ops.running_stat(self.running_var, data, m, "var")
            # An affine parameter of another layout (a (1, dim) one) is viewed as (dim,).
            w, b = (p if p.shape == (self.dim,) else p.reshape((self.dim,))
                    for p in (self.weight, self.bias))
            return ops.batchnorm_train(x, w, b, self.eps)
        centred = x - _keep_last(self.running_mean, shape)
        std = _keep_last((self.running_var + self.eps) ** 0.5, shape)
        return centred / std * _keep_last(self.weight, shape) + _keep_last(self.bias, shape)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm2d(BatchNorm1d):
    """BatchNorm over the channels of NCHW inputs (statistics over N, H and W)."""

    def forward(self, x: Tensor) -> Tensor:
        if len(x.shape) != 4:
            raise ShapeError(f"BatchNorm2d: expected NCHW input, got {x.shape}")
        n, c, h, w = x.shape
        if c != self.dim:
            raise ShapeError(f"BatchNorm2d: expected NCHW input with {self.dim} channels, "
                             f"got shape {x.shape}")
        flat = x.permute((0, 2, 3, 1)).reshape((n * h * w, c))
        out = super().forward(flat)
        return out.reshape((n, h, w, c)).permute((0, 3, 1, 2))


class LayerNorm1d(Module):
    """Normalise each row over its last axis (biased variance), then scale and shift."""

    def __init__(
        self, dim: int, eps: float = 1e-5, device: Any = None, dtype: str = "float32"
    ) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = Parameter(init.ones(dim, device=device, dtype=dtype, requires_grad=True))
        self.bias = Parameter(init.zeros(dim, device=device, dtype=dtype, requires_grad=True))

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        if not shape or shape[-1] != self.dim:
            raise ShapeError(f"LayerNorm1d: expected last dim {self.dim}, got shape {shape}")
        last = len(shape) - 1
        row = shape[:-1] + (1,)
        mean = ops.broadcast_to(x.sum(axes=(last,)).reshape(row) / self.dim, shape)
        centred = x - mean
        var = (centred ** 2).sum(axes=(last,)).reshape(row) / self.dim
        std = ops.broadcast_to((var + self.eps) ** 0.5, shape)
        # w * (x - mean) / std + b, in the course's order (float32 rounds differently if
        # the division comes first).
        return _keep_last(self.weight, shape) * centred / std + _keep_last(self.bias, shape)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


class Dropout(Module):
    """Zero each entry with probability ``p`` in training, scaling the rest by 1/(1-p).

    The keep-mask is ``init.randb(*x.shape, p=1 - p)``: one ``rand`` draw per call.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        mask = init.randb(*x.shape, p=1 - self.p, device=x.device, dtype=x.dtype)
        if self.p == 1.0:
            return x * mask
        return x * mask / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Residual(Module):
    """``fn(x) + x``."""

    def __init__(self, fn: Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        y = self.fn(x)
        if y.shape != x.shape:
            raise ShapeError(f"Residual: fn(x) has shape {y.shape} but x has shape {x.shape}; "
                             f"the wrapped {type(self.fn).__name__} must keep its input's shape")
        return y + x
