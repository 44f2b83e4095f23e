"""PyTorch kernels transposed into Keras's layout while a port is still tracing the two graphs.

Tracing (torch.fx, the Keras walk) and pairing are Python holding the GIL; the transposes are memory-bound
copies of about the same duration (docs/performance.md) that need no Python once started. So before planning, a
port into Keras guesses the layout each convolution and Linear weight will take (a plain Conv1D/2D/3D or Dense:
spatial axes, then in, then out) and copies them all in one PyTorch call (``torch._foreach_copy_``, through
:func:`bnport.adapters.torch.compat.copy_all`, releases the GIL for the whole list) on a worker thread. When the
writes are known, :meth:`EarlyKernels.claim` hands over a copy only if it was made from exactly the view the write
needs (same memory, shape, strides and dtype): a guess that does not fit (a depthwise kernel, a Dense after a
Flatten, a weight with a parametrization) is simply not used, and the write gathers its value as usual.

At most ``limit`` bytes are copied ahead (default 256 MiB): the copies exist beside the source and the
destination until they replace the destination's buffers, so a very large model keeps the rest for the usual
path, which bounds what it holds at once.

Once copied, the same worker takes every copy's norm in one more GIL-releasing call
(:func:`bnport.adapters.torch.compat.norms`; a norm is finite only if every value is): a port refuses non-finite
weights before writing (:mod:`bnport.core.health`), and :meth:`EarlyKernels.known_finite` spares it reading again the
kernels already known finite, most of a model's bytes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import numpy as np
import torch

from bnport.adapters.torch import compat as torch_compat

_LIMIT = 256 * 2**20
_ALIGNMENT = 64  # TensorFlow's kernels need it of a buffer it adopts; PyTorch's CPU allocator gives it


class EarlyKernels:
    """Copies, made on a worker thread, of a PyTorch model's kernels seen in Keras's layout, and which of them
    hold finite values only."""

    def __init__(self, model: torch.nn.Module, limit: int = _LIMIT) -> None:
        views, copies, kernels, used = [], [], [], 0
        for module in model.modules():
            weight = _plain_kernel(module)
            if weight is None or used + weight.nbytes > limit:
                continue
            view = weight.permute(*range(2, weight.ndim), 1, 0)
            views.append(view)
            kernels.append(_key_of_tensor(weight))
            copies.append(torch.empty(view.shape, dtype=view.dtype))
            used += weight.nbytes
        self._ready: dict[tuple, torch.Tensor] = {_key_of_tensor(v): c for v, c in zip(views, copies, strict=True)}
        self._failed: BaseException | None = None
        self._kernels = kernels  # each copy's source kernel (its key), in the copies' order
        self._norms: list[torch.Tensor] | None = None  # the copies' norms, once copied
        self._finite: frozenset[tuple] | None = None  # the kernels found finite, once asked
        self._thread = threading.Thread(target=self._copy_all, args=(copies, views), name="bnport-early-kernels",
                                        daemon=True)
        if views:
            self._thread.start()
        self.used = 0  # how many copies were claimed

    def claim(self, value: np.ndarray) -> torch.Tensor | None:
        """The copy being made of ``value`` (a view of the source's memory), or None if none is made of it.

        The copy is complete only once :meth:`wait` has returned.
        """
        copy = self._ready.pop(_key_of_array(value), None)
        if copy is None or copy.data_ptr() % _ALIGNMENT:
            return None
        self.used += 1
        return copy

    def wait(self) -> bool:
        """Wait until every copy is made; False if copying failed (then no claimed copy may be used)."""
        if self._thread.ident is not None:  # started (there was something to copy)
            self._thread.join()
        return self._failed is None

    def known_finite(self) -> Callable[[np.ndarray], bool] | None:
        """A test of whether an array is a source kernel (its memory, shape, strides, dtype) whose copy holds finite
        values only, so that they need not be read again; None while the copies are still being made (a
        ResNet-50's outlast the tracing: the caller reading the values itself beats waiting).

        Call it from the port's own thread: its torch calls release the GIL, and a thread asking for it back
        waits while another runs Python.
        """
        if self._thread.is_alive():
            return None
        if self._finite is None:
            self.wait()
            good = torch.stack(self._norms).isfinite().tolist() if self._norms else [False] * len(self._kernels)
            self._finite = frozenset(key for key, ok in zip(self._kernels, good, strict=True) if ok)
        finite = self._finite
        return lambda value: _key_of_array(value) in finite

    def _copy_all(self, copies: list[torch.Tensor], views: list[torch.Tensor]) -> None:
        try:
            torch_compat.copy_all(copies, views)
        except BaseException as exc:  # reported by wait(); the writes then gather as usual
            self._failed = exc
            return
        # one call: each torch call returns into Python only once this thread has the GIL back. If it fails,
        # nothing is known early and the port reads the values as usual.
        with contextlib.suppress(Exception):
            self._norms = torch_compat.norms(copies)


def _plain_kernel(module: torch.nn.Module) -> torch.Tensor | None:
    """The weight of a Linear or an ungrouped, untransposed convolution, as a plain CPU tensor (else None)."""
    if isinstance(module, torch.nn.Linear) or (
        isinstance(module, torch.nn.modules.conv._ConvNd) and not module.transposed and module.groups == 1
    ):
        weight = module.__dict__.get("_parameters", {}).get("weight")
        if isinstance(weight, torch.Tensor) and weight.device.type == "cpu" and weight.dtype.is_floating_point \
                and weight.dtype != torch.bfloat16 and not weight.is_meta:
            return weight.detach()
    return None


def _key_of_tensor(view: torch.Tensor) -> tuple:
    itemsize = view.element_size()
    return (view.data_ptr(), tuple(view.shape), tuple(s * itemsize for s in view.stride()),
            np.dtype(str(view.dtype).removeprefix("torch.")).str)


def _key_of_array(value: np.ndarray) -> tuple:
    return (value.__array_interface__["data"][0], value.shape, value.strides, value.dtype.str)
