"""A benchmark figure is a record: what was measured, on what, by whom, and its value.

Every measurement returns `Figure` records; ``jaxheads bench`` (and the side-by-side
of ``benchmarks/``) writes them to the JSON as they are and builds its Markdown tables
by asking `Figures` for records by their fields. No figure's name is composed into a
string to be taken apart again.

>>> figures = Figures()
>>> figures.add("infer", "latency_ms", 4.0, model="yolov1_fc", batch=1)
>>> figures.value("infer", "latency_ms", model="yolov1_fc", batch=1)
4.0
>>> figures.value("infer", "latency_ms", model="yolov1_fc", batch=16)
nan
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One measured number.

    Attributes:
      section: the part of the benchmark: ``train``, ``e2e``, ``infer``, ``evaluate``,
        ``detect``, ``scaling`` or ``peak`` (the hardware alone).
      metric: what the number is, with its unit: ``images_per_s``, ``step_ms``,
        ``speedup`` (jaxheads ÷ ``framework``, or ``framework`` ÷ jaxheads for times),
        ``compile_s``, ``mfu``, ...
      value: the number.
      model: the network measured (``yolov2_tiny``, ``yolov1_fc``, ...), if any.
      framework: who ran it (``jaxheads``, ``keras_stateless``, ``flax_nnx``,
        ``darknet``, ...), a variant of a run (``step_only``, ``jaxheads_predrawn``),
        or what a ``speedup`` compares against; None for a figure of no one run.
      batch: the batch size, where the figure depends on it.
      devices: the device count, for scaling.
      dtype: the dtype the measured computation ran in.
    """

    section: str
    metric: str
    value: float
    model: str | None = None
    framework: str | None = None
    batch: int | None = None
    devices: int | None = None
    dtype: str = "float32"

    @property
    def label(self) -> str:
        """A readable name for tables and logs, e.g. ``train speedup keras yolov1_fc``."""
        parts = [self.section, self.metric, self.framework, self.model]
        if self.batch is not None:
            parts.append(f"batch {self.batch}")
        if self.devices is not None:
            parts.append(f"{self.devices} devices")
        if self.dtype != "float32":
            parts.append(self.dtype)
        return " ".join(p for p in parts if p)


FIELDS = tuple(f.name for f in dataclasses.fields(Figure) if f.name != "value")


class Figures:
    """The records of a run, in the order they were measured, queried by their fields."""

    def __init__(self, records: Iterable[Figure] = ()):
        self.records: list[Figure] = list(records)

    def __iter__(self) -> Iterator[Figure]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def add(self, section: str, metric: str, value: float, **fields) -> None:
        """Records ``value`` (a float) under ``section``, ``metric`` and `Figure`'s fields."""
        self.records.append(Figure(section, metric, float(value), **fields))

    def extend(self, records: Iterable[Figure]) -> None:
        self.records.extend(records)

    def select(self, **fields) -> list[Figure]:
        """The records whose given fields equal the values given (other fields free)."""
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise TypeError(f"Figures.select: fields among {FIELDS}, got {sorted(unknown)}")
        return [r for r in self.records if all(getattr(r, k) == v for k, v in fields.items())]

    def value(self, section: str, metric: str, default: float = math.nan, **fields) -> float:
        """The value of the one record matching, or ``default`` when none does.

        Raises:
          ValueError: several records match (the fields given do not name one figure).
        """
        found = self.select(section=section, metric=metric, **fields)
        if len(found) > 1:
            raise ValueError(
                f"Figures.value: expected one figure for {section} {metric} {fields}, got "
                + ", ".join(r.label for r in found)
            )
        return found[0].value if found else default

    def to_json(self) -> list[dict]:
        """The records as JSON objects (every field named)."""
        return [dataclasses.asdict(r) for r in self.records]
