"""Post-processing rules of predicted masks, parsed from ``--rule`` texts; the defaults live here.

Two rules:

- ``water_over_buildings`` (default on; ``water_over_buildings=off`` turns it off): no building or
  structure where water or a waterway is predicted. Per pixel, so it is applied inside each strip
  as the strip is written (memory: the strip).
- ``min_area=<pixels>`` (every class) and ``min_area.<class>=<pixels>`` (one class, over the
  global value): objects (4-connected, as the polygons are) of fewer pixels are removed; holes
  stay. Objects cross strips, so this runs per class on the whole class band when it is read back
  for polygonizing (``H * W`` bytes, held anyway): the band's exact pixel outlines
  (``rasterio.features.shapes``), the small ones burnt out again. (GDAL's sieve is no substitute: it
  also fills small holes, and an object inside a small hole survives it.) Default: 0 (off).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    import numpy as np

WATER_CLASSES = ("water", "waterway")
BUILT_CLASSES = ("buildings", "structures")
CONNECTIVITY = 4  # of objects for min_area: the connectivity of the polygons (rasterio.features.shapes)
ON, OFF = ("on", "true", "yes", "1"), ("off", "false", "no", "0")


class RuleError(OrchestratorError):
    """A ``--rule`` text that cannot be used."""


@dataclass(frozen=True)
class Rules:
    """Which post-processing applies; ``Rules()`` is the default."""

    water_over_buildings: bool = True
    min_area: int = 0  # pixels, every class; 0: keep every object
    min_area_by_class: Mapping[str, int] = field(default_factory=dict)

    def min_area_of(self, name: str) -> int:
        return self.min_area_by_class.get(name, self.min_area)

    def describe(self) -> str:
        parts = [f"water_over_buildings={'on' if self.water_over_buildings else 'off'}"]
        parts.append(f"min_area={self.min_area}")
        parts += [f"min_area.{name}={area}" for name, area in sorted(self.min_area_by_class.items())]
        return ", ".join(parts)


DEFAULT_RULES = Rules()
RULE_SYNTAX = "water_over_buildings[=on|off], min_area=PIXELS, min_area.CLASS=PIXELS"


def parse_rules(texts: Iterable[str], base: Rules = DEFAULT_RULES) -> Rules:
    """``base`` changed by each ``key[=value]`` text, in order (a text may hold several, comma-separated)."""
    from trainables.unet.dstl import CLASS_TYPES

    water, area, by_class = base.water_over_buildings, base.min_area, dict(base.min_area_by_class)
    for text in (part.strip() for t in texts for part in t.split(",")):
        if not text:
            continue
        key, has_value, value = (s.strip() for s in text.partition("="))
        if key == "water_over_buildings":
            if has_value and value.lower() not in (*ON, *OFF):
                raise RuleError(f"rule {text!r}: expected on or off")
            water = not has_value or value.lower() in ON
        elif key == "min_area" or key.startswith("min_area."):
            pixels = _pixels(text, value if has_value else "")
            name = key.removeprefix("min_area").removeprefix(".")
            if not name:
                area = pixels
            elif name in CLASS_TYPES:
                by_class[name] = pixels
            else:
                raise RuleError(f"rule {text!r}: unknown class {name!r}; expected one of {', '.join(CLASS_TYPES)}")
        else:
            raise RuleError(f"unknown rule {text!r}; expected {RULE_SYNTAX}")
    return Rules(water, area, by_class)


def _pixels(text: str, value: str) -> int:
    try:
        pixels = int(value)
    except ValueError:
        raise RuleError(f"rule {text!r}: expected a whole number of pixels") from None
    if pixels < 0:
        raise RuleError(f"rule {text!r}: expected a whole number of pixels >= 0")
    return pixels


def apply_pixel_rules(masks: np.ndarray, classes: Sequence[str], rules: Rules) -> np.ndarray:
    """The per-pixel rules on (classes, rows, W) masks of one strip, in place; returns ``masks``."""
    import numpy as np

    if rules.water_over_buildings:
        water = [classes.index(name) for name in WATER_CLASSES if name in classes]
        built = [classes.index(name) for name in BUILT_CLASSES if name in classes]
        if water and built:
            wet = np.logical_or.reduce(masks[water].astype(bool), axis=0)
            masks[built] &= ~wet
    return masks


def remove_small_objects(mask: np.ndarray, min_area: int) -> np.ndarray:
    """A uint8 (H, W) 0/1 ``mask`` without its objects (4-connected) of fewer than ``min_area`` pixels; holes
    and objects inside holes are objects of their own. Memory: the band's polygons and one (H, W) uint8."""
    if min_area <= 1 or not mask.any():
        return mask
    import numpy as np
    import shapely.geometry
    from rasterio import features

    inside = mask.astype(bool)
    small = [shapely.geometry.shape(g) for g, _ in features.shapes(mask, mask=inside, connectivity=CONNECTIVITY)]
    small = [polygon for polygon in small if polygon.area < min_area]  # pixel outlines: area = pixels
    if not small:
        return mask
    # by pixel centre: exactly the pixels of each outline (its holes stay out)
    removed = features.rasterize([(polygon, 1) for polygon in small], out_shape=mask.shape, dtype=np.uint8)
    return (mask & (1 - removed)).astype(mask.dtype)
