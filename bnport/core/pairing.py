"""``bnport.plan``: pair the weight-holding layers of a PyTorch and a Keras model, all problems at once.

Pairs come from, in order: the explicit mapping (names), its regex rules, then structure (the labels of
:func:`bnport.core.graph.labels`: a layer's kind and shapes and those of everything before and after it). Equal
labels that structure cannot tell apart are refused, never guessed; the error shows the mapping lines that
would settle it. Nothing is written while planning.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bnport.core.differences import Difference, differences
from bnport.core.frameworks import TORCH
from bnport.core.graph import Graph, Node, labels
from bnport.core.layers import describe, settings_conflicts, signature
from bnport.core.wording import count
from bnport.errors import IncompatibleLayerError, UsageError


class PlanError(IncompatibleLayerError):
    """The two models cannot be paired layer by layer without a guess; the message lists every problem."""


@dataclass(frozen=True)
class Pair:
    """One PyTorch layer and the Keras layer that holds the same weights."""

    torch_name: str
    keras_name: str
    kind: str
    how: str  # "structure", "mapping" or "rule"

    def name(self, framework: str) -> str:
        """The layer's name on that side (``"torch"`` or ``"keras"``)."""
        return self.torch_name if framework == TORCH else self.keras_name


@dataclass
class Plan:
    """Every pair, every unmatched layer on each side and every conflict, in PyTorch execution order."""

    pairs: list[Pair] = field(default_factory=list)
    unmatched_torch: list[str] = field(default_factory=list)
    unmatched_keras: list[str] = field(default_factory=list)
    unsupported_torch: list[str] = field(default_factory=list)
    unsupported_keras: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    ambiguous_names: set[str] = field(default_factory=set, repr=False)
    conflicts_of: dict[str, list[str]] = field(default_factory=dict, repr=False)  # PyTorch name -> its conflicts
    torch_graph: Graph | None = field(default=None, repr=False)
    keras_graph: Graph | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Every weight-holding layer on both sides is paired, no pair conflicts, and the definitions do not make
        the two compute different things."""
        return not (self.problems(strict=True))

    def problems(self, *, strict: bool) -> list[str]:
        """Lines describing what stops a port; unmatched and unsupported layers and differences of the definitions
        (:mod:`bnport.core.differences`) count only when strict."""
        out = [f"conflict: {c}" for c in self.conflicts] + [f"ambiguous: {a}" for a in self.ambiguous]
        if strict:
            out += [f"differs: {d.torch_name} <-> {d.keras_name}: {d}" for d in self.differences]
            out += [f"unmatched PyTorch layer: {n}{self._shapes(self.torch_graph, n)}" for n in self.unmatched_torch]
            out += [f"unmatched Keras layer: {n}{self._shapes(self.keras_graph, n)}" for n in self.unmatched_keras]
            out += [f"unsupported PyTorch layer: {n}" for n in self.unsupported_torch]
            out += [f"unsupported Keras layer: {n}" for n in self.unsupported_keras]
        return out

    @staticmethod
    def _shapes(graph: Graph | None, name: str) -> str:
        """`` (conv(weight[8, 3, 3, 3]))``: what an unmatched layer holds, in the framework-neutral layout both sides
        are compared in, so the shapes that stopped a pairing can be read side by side."""
        node = graph.nodes.get(name) if graph is not None else None
        return f" ({describe(node.spec)})" if node is not None and node.spec is not None else ""

    def graph(self, framework: str) -> Graph | None:
        """The graph of that side (``"torch"`` or ``"keras"``)."""
        return self.torch_graph if framework == TORCH else self.keras_graph

    def unmatched(self, framework: str) -> list[str]:
        """That side's weight-holding layers with no partner."""
        return self.unmatched_torch if framework == TORCH else self.unmatched_keras

    def unsupported(self, framework: str) -> list[str]:
        """That side's weight-holding layers bnport has no mapping for."""
        return self.unsupported_torch if framework == TORCH else self.unsupported_keras

    def raise_for_problems(self, *, strict: bool = True) -> None:
        """Raise :class:`PlanError` listing every problem at once (nothing has been written)."""
        problems = self.problems(strict=strict)
        if problems:
            raise PlanError(
                f"cannot pair the models ({count(len(self.pairs), 'pair')} found, {count(len(problems), 'problem')}):"
                "\n  "
                + "\n  ".join(problems)
            )

    def as_dict(self) -> dict:
        """A JSON-ready description."""
        return {
            "pairs": [p.__dict__ for p in self.pairs],
            "unmatched_torch": self.unmatched_torch,
            "unmatched_keras": self.unmatched_keras,
            "unsupported_torch": self.unsupported_torch,
            "unsupported_keras": self.unsupported_keras,
            "conflicts": self.conflicts,
            "ambiguous": self.ambiguous,
            "differences": [d.__dict__ for d in self.differences],
        }

    def __str__(self) -> str:
        lines = [count(len(self.pairs), "pair")]
        lines += [f"  {p.torch_name} <-> {p.keras_name}  [{p.kind}, {p.how}]" for p in self.pairs]
        lines += [f"  {line}" for line in self.problems(strict=True)]
        return "\n".join(lines)


@dataclass(frozen=True)
class LayerMapping:
    """An explicit mapping: exact PyTorch -> Keras names, and (regex, replacement) rules on PyTorch names."""

    pairs: Mapping[str, str] = field(default_factory=dict)
    rules: tuple[tuple[str, str], ...] = ()


def load_mapping(mapping: object) -> LayerMapping:
    """Accept None, a dict (``{"pairs": {...}, "rules": [...]}`` or plain names), or a JSON/YAML file path."""
    if mapping is None:
        return LayerMapping()
    if isinstance(mapping, LayerMapping):
        return mapping
    if isinstance(mapping, (str, Path)):
        mapping = _read_mapping_file(Path(mapping))
    if not isinstance(mapping, Mapping):
        raise UsageError(f"a mapping is a dict or a JSON/YAML file. Received: {type(mapping).__name__}")
    if "pairs" in mapping or "rules" in mapping:
        pairs = dict(mapping.get("pairs") or {})
        rules = tuple(_rule(r) for r in mapping.get("rules") or ())
    else:
        pairs, rules = dict(mapping), ()
    for k, v in pairs.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise UsageError(f"mapping pairs name layers with strings. Received: {k!r}: {v!r}")
    return LayerMapping(pairs, rules)


def _rule(rule: object) -> tuple[str, str]:
    if isinstance(rule, Mapping) and {"torch", "keras"} <= set(rule):
        pattern, repl = rule["torch"], rule["keras"]
    elif isinstance(rule, (list, tuple)) and len(rule) == 2:
        pattern, repl = rule
    else:
        raise UsageError(f'a mapping rule is {{"torch": REGEX, "keras": REPLACEMENT}}. Received: {rule!r}')
    try:
        re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"mapping rule {pattern!r} is not a valid regular expression: {exc}") from exc
    return str(pattern), str(repl)


def _read_mapping_file(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read mapping file {path}: {exc.strerror}") from exc
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:
            raise UsageError(f"reading the YAML mapping {path} needs PyYAML (pip install 'bnport[yaml]'); "
                             "or write it as JSON") from exc
    try:
        if path.suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as exc:
        raise UsageError(f"mapping file {path} is not valid {path.suffix[1:].upper()}: {exc}") from exc


def match(tg: Graph, kg: Graph, mapping: object = None, *, source: str | None = "torch") -> Plan:
    """Pair two reduced graphs; see the module docstring for the order of evidence.

    ``source``: the framework ported from (``"torch"`` or ``"keras"``), which decides which settings conflict (a
    bias the destination has no room for); None checks both ways, as a comparison of two given models does.
    """
    m = load_mapping(mapping)
    plan = Plan(unsupported_torch=list(tg.unsupported), unsupported_keras=list(kg.unsupported),
                torch_graph=tg, keras_graph=kg)
    paired: dict[str, tuple[str, str]] = {}
    taken: set[str] = set()
    _explicit(m, tg, kg, paired, taken, plan)
    t_left = [n for n in tg.nodes if n not in paired]
    k_left = [n for n in kg.nodes if n not in taken]
    t_lab, k_lab = labels(tg), labels(kg)
    for key in (lambda lab: lab, lambda lab: lab[0], lambda lab: lab[1]):
        t_left, k_left = _by_label(t_left, k_left, t_lab, k_lab, key, paired, taken)
    _ambiguities(t_left, k_left, t_lab, k_lab, tg, plan)
    plan.unmatched_torch = [n for n in t_left if n not in plan.ambiguous_names]
    plan.unmatched_keras = [n for n in k_left if n not in plan.ambiguous_names]
    for t_name in tg.nodes:
        if t_name in paired:
            k_name, how = paired[t_name]
            plan.pairs.append(Pair(t_name, k_name, signature(tg.nodes[t_name].spec)[0], how))
            found = _pair_conflicts(tg.nodes[t_name], kg.nodes[k_name], source)
            plan.conflicts += found
            if found:
                plan.conflicts_of[t_name] = found
    plan.differences = differences(tg, kg, plan.pairs)
    return plan


def _explicit(m: LayerMapping, tg: Graph, kg: Graph, paired: dict, taken: set, plan: Plan) -> None:
    for t_name, k_name in m.pairs.items():
        missing = ([f"PyTorch '{t_name}'"] if t_name not in tg.nodes else []) + (
            [f"Keras '{k_name}'"] if k_name not in kg.nodes else [])
        if missing:
            plan.conflicts.append(f"the mapping names {' and '.join(missing)}, which hold no weights or do not exist")
            continue
        paired[t_name] = (k_name, "mapping")
        taken.add(k_name)
    for pattern, repl in m.rules:
        for t_name in tg.nodes:
            hit = re.fullmatch(pattern, t_name)
            if t_name in paired or not hit:
                continue
            k_name = hit.expand(repl)
            if k_name in kg.nodes and k_name not in taken:
                paired[t_name] = (k_name, "rule")
                taken.add(k_name)


def _by_label(t_left, k_left, t_lab, k_lab, key: Callable, paired: dict, taken: set):
    t_groups, k_groups = defaultdict(list), defaultdict(list)
    for n in t_left:
        t_groups[key(t_lab[n])].append(n)
    for n in k_left:
        k_groups[key(k_lab[n])].append(n)
    for lab, ts in t_groups.items():
        ks = k_groups.get(lab, [])
        if len(ts) == 1 and len(ks) == 1:
            paired[ts[0]] = (ks[0], "structure")
            taken.add(ks[0])
    return [n for n in t_left if n not in paired], [n for n in k_left if n not in taken]


def _ambiguities(t_left, k_left, t_lab, k_lab, tg: Graph, plan: Plan) -> None:
    groups: dict[object, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for n in t_left:
        groups[t_lab[n]][0].append(n)
    for n in k_left:
        groups[k_lab[n]][1].append(n)
    for ts, ks in groups.values():
        if len(ts) > 1 and len(ks) > 1:
            plan.ambiguous_names.update(ts + ks)
            lines = ", ".join(f'"{t}": "{k}"' for t, k in zip(ts, ks, strict=False))
            plan.ambiguous.append(
                f"PyTorch {', '.join(ts)} and Keras {', '.join(ks)} have the same kind "
                f"({describe(tg.nodes[ts[0]].spec)}), shapes and place in the graph, so structure cannot pair "
                f"them; settle it with mapping lines such as {{{lines}}} (order as you intend)"
            )


def _pair_conflicts(t: Node, k: Node, source: str | None) -> list[str]:
    if signature(t.spec) != signature(k.spec):
        return [f"PyTorch {t.name} is {describe(t.spec)} but Keras {k.name} is {describe(k.spec)}"]
    if source == "keras":
        found = settings_conflicts(k.spec, k.values, t.spec, ("Keras", "PyTorch"))
    elif source == "torch":
        found = settings_conflicts(t.spec, t.spec, k.spec, ("PyTorch", "Keras"))
    else:
        found = list(dict.fromkeys(settings_conflicts(t.spec, t.spec, k.spec, ("PyTorch", "Keras"))
                                   + settings_conflicts(k.spec, k.values, t.spec, ("Keras", "PyTorch"))))
    return [f"{t.name} <-> {k.name}: {c}" for c in found]
