"""jax2onnx, as bnport calls it: its public ``to_onnx``, with the plugins for JAX's own primitives loaded alone.

``jax2onnx.to_onnx`` first imports every plugin module it ships, those for Flax, Equinox and its example models
included, several of which compile JAX functions as they import: about 10 s on a first conversion, of which the
plugins for ``jax.lax``, ``jax.numpy``, ``jax.nn`` and ``jax.image`` (all that Keras's JAX backend calls) take about
1 s (docs/performance.md). On the jax2onnx versions in :data:`TESTED`, with the parts :func:`probe` checks present,
bnport imports that subtree with jax2onnx's own importer and, for its conversion only, replaces the converter's
"import every plugin" step by it (through :class:`bnport.adapters.swaps.Swap`: the export lock held, the calling
thread only, restored on every exit). Nothing else changes: jax2onnx's registry only ever gains the plugins it would
have imported itself, and a later ``to_onnx`` of the user's still imports all of them. Elsewhere the public path
runs as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import onnx

from bnport.adapters.swaps import EXPORT_LOCK, Replacement, Swap

#: jax2onnx versions (major.minor) whose private parts bnport's narrower plugin import was tested on
TESTED = ("0.17",)

#: False: always take jax2onnx's public path (the fallback, tested)
FAST = True

#: the plugin subtrees Keras's JAX backend needs (its ops are jax.numpy, jax.lax, jax.nn and jax.image calls)
SUBTREES = ("jax",)


def probe() -> str | None:
    """Why the narrower plugin import cannot run on the installed jax2onnx, or None when it can."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("jax2onnx")  # the package has no __version__
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    if not any(version == t or version.startswith(t + ".") for t in TESTED):
        return f"jax2onnx {version} is not a tested version ({', '.join(TESTED)})"
    try:
        from jax2onnx.converter import conversion_api
        from jax2onnx.plugins import plugin_system
    except ImportError as exc:
        return f"jax2onnx {version} lacks {exc.name}"
    missing = [name for owner, name in ((plugin_system, "_import_tree"), (conversion_api, "import_all_plugins"))
               if not callable(getattr(owner, name, None))]
    return f"jax2onnx {version} lacks {', '.join(missing)}" if missing else None


def to_onnx(fn, inputs: Sequence, *, names: Sequence[str], opset: int) -> onnx.ModelProto:
    """``jax2onnx.to_onnx(fn, inputs, ...)`` as an in-memory model, its inputs named ``names``."""
    import jax2onnx

    with EXPORT_LOCK, _jax_plugins_only():
        return jax2onnx.to_onnx(fn, inputs=list(inputs), input_names=list(names), opset=opset, return_mode="proto")


def _jax_plugins_only() -> contextlib.AbstractContextManager:
    if not FAST or probe() is not None:
        return contextlib.nullcontext()
    from jax2onnx.converter import conversion_api

    swap = Swap("jax2onnx", (Replacement(conversion_api, "import_all_plugins", _import_jax_plugins),))
    return swap


def _import_jax_plugins(original):
    def import_jax_plugins() -> None:
        from pathlib import Path

        from jax2onnx.plugins import plugin_system

        root = Path(plugin_system.__file__).parent
        for helper in sorted(root.glob("_*.py")):  # the shared helpers at the top of the tree
            if helper.name != "__init__.py":
                __import__(f"jax2onnx.plugins.{helper.stem}")
        for subtree in SUBTREES:
            plugin_system._import_tree(root / subtree, f"jax2onnx.plugins.{subtree}")

    return import_jax_plugins
