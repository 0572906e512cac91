"""Class names: darknet ``.names`` files and the VOC and COCO lists darknet ships.

>>> names_for(20)[:3]
('aeroplane', 'bicycle', 'bird')
>>> names_for(80)[:3]
('person', 'bicycle', 'car')
>>> names_for(3)
('class_0', 'class_1', 'class_2')
"""

from __future__ import annotations

import os

from jaxheads._checks import fail
from jaxheads.data.coco import COCO_CLASSES
from jaxheads.data.voc import VOC_CLASSES

#: darknet's data/coco.names: COCO's 80 categories, as `jaxheads.data.coco.COCO_CLASSES`.
COCO_NAMES = COCO_CLASSES
#: darknet's data/voc.names: the devkit's order, as `jaxheads.data.VOC_CLASSES`.
VOC_NAMES = VOC_CLASSES

__all__ = ["COCO_NAMES", "VOC_NAMES", "names_for", "read_names"]


def read_names(path: str | os.PathLike) -> tuple[str, ...]:
    """A darknet ``.names`` file: one class name a line (surrounding blanks dropped).

    Raises:
      ValueError: naming the file when it cannot be read or holds no name.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        fail("read_names", f"a readable UTF-8 .names file at {os.fspath(path)!r}", err)
    # Trailing empty lines are common; an empty line inside the list would shift every class.
    while lines and not lines[-1].strip():
        lines.pop()
    names = tuple(line.strip() for line in lines)
    if not names or not all(names):
        fail(
            "read_names",
            f"one non-empty class name a line in {os.fspath(path)!r}",
            f"{len(names)} lines, {sum(1 for n in names if not n)} of them empty",
        )
    return names


def names_for(num_classes: int, names: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The names of ``num_classes`` classes: ``names`` when given, else VOC's for 20 and
    COCO's for 80, else ``class_0, class_1, ...``.

    Raises:
      ValueError: when ``names`` does not hold exactly ``num_classes`` names.
    """
    if names is not None:
        if len(names) != num_classes:
            fail(
                "names_for",
                f"{num_classes} class names (the model's classes)",
                f"{len(names)} names",
            )
        return tuple(names)
    if num_classes == len(VOC_NAMES):
        return VOC_NAMES
    if num_classes == len(COCO_NAMES):
        return COCO_NAMES
    return tuple(f"class_{k}" for k in range(num_classes))
