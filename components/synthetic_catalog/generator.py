"""A deterministic synthetic fashion catalog: the project's embedded default data.

Each image shows one figure on a varied background wearing one to three garments (a full-body
garment, or an upper- plus a lower-body garment, with or without footwear) from 18 garment
categories, plus optional accessories. Garments carry a colour, a pattern (solid, stripes,
checks, dots, floral, animal) and a sleeve or length style. Six fictional brands each have a
consistent but not trivial identity: a palette, preferred patterns and silhouettes, a proportion
(oversized or slim), a favourite backdrop and a logo motif, each used only some of the time and
overlapping between brands. Shots are framed on the whole figure, waist-down (bottoms) or
waist-up (tops), and the image's main garment follows :func:`choose_main_garment`. Boxes and
segmentation masks are exact: they come from the label map
the renderer paints, after occlusion.

Image ``i`` of seed ``s`` depends only on ``(s, i)``, so any subset can be regenerated.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator, Optional

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from components.catalog_import import images as image_io
from components.catalog_import.records import (FashionRecord, GarmentObject, caption_for,
                                               choose_main_garment)
from schemas import features as F

COLOR_RGB = {
    "red": (200, 30, 40), "orange": (235, 120, 30), "yellow": (240, 205, 50),
    "green": (40, 140, 60), "teal": (20, 150, 150), "blue": (40, 90, 210),
    "navy": (25, 35, 90), "purple": (120, 50, 150), "pink": (240, 140, 180),
    "brown": (110, 70, 40), "beige": (215, 195, 160), "black": (25, 25, 28),
    "white": (240, 240, 236), "grey": (130, 130, 135),
}
UPPER = ("t_shirt", "shirt", "sweater", "hoodie", "jacket", "coat", "top")
LOWER = ("jeans", "pants", "shorts", "skirt", "leggings")
FULL = ("dress", "jumpsuit")
SHOES = ("sneakers", "boots", "heels", "sandals")
SYNTHETIC_GARMENTS = UPPER + LOWER + FULL + SHOES
SYNTHETIC_ACCESSORIES = ("bag", "hat", "scarf", "belt", "eyewear")
SKIN_TONES = ((245, 215, 190), (225, 180, 145), (190, 140, 100), (140, 95, 65), (95, 65, 45))
HAIR_COLORS = ((30, 25, 20), (90, 60, 35), (200, 170, 100), (150, 70, 30), (60, 60, 60))
BACKDROPS = ("solid", "gradient", "noise", "horizon", "runway")
STUDIO_FRACTION = 0.5
# Catalog shots: the whole figure, or product shots framed on the bottoms or on the top.
FRAMINGS = ("full", "waist_down", "waist_up")
FRAMING_WEIGHTS = (0.6, 0.25, 0.15)


@dataclasses.dataclass(frozen=True)
class Brand:
    """A fictional brand's visual identity (every element is a tendency, not a rule)."""

    name: str
    palette: tuple
    patterns: tuple  # preferred patterns
    garments: tuple  # preferred garments
    fit: float  # width multiplier of garments: >1 oversized, <1 slim
    backdrop: str
    backdrop_colors: tuple
    motif: str  # logo shape drawn on the chest of the main garment
    accent: str


BRANDS = (
    Brand("aurelia", ("beige", "white", "brown", "black"), ("solid", "checks"),
          ("coat", "pants", "shirt", "heels", "dress"), 1.0, "gradient", ("beige", "white"),
          "circle", "brown"),
    Brand("borealis", ("black", "grey", "white", "navy"), ("solid", "stripes"),
          ("hoodie", "jeans", "sneakers", "jacket", "leggings"), 1.25, "runway",
          ("black", "grey"), "bar", "white"),
    Brand("cobalt", ("blue", "navy", "white", "teal"), ("stripes", "dots"),
          ("shirt", "shorts", "t_shirt", "sandals", "skirt"), 1.0, "horizon", ("blue", "white"),
          "diamond", "red"),
    Brand("dune", ("brown", "orange", "beige", "yellow"), ("animal", "solid"),
          ("jumpsuit", "jacket", "boots", "skirt", "top"), 1.1, "noise", ("orange", "beige"),
          "triangle", "black"),
    Brand("ember", ("red", "pink", "black", "purple"), ("floral", "dots"),
          ("dress", "top", "heels", "skirt", "t_shirt"), 0.9, "solid", ("pink", "black"),
          "star", "yellow"),
    Brand("fjord", ("green", "teal", "grey", "white"), ("checks", "stripes"),
          ("sweater", "jeans", "boots", "coat", "pants"), 1.05, "horizon", ("green", "grey"),
          "cross", "white"),
)
BRAND_NAMES = tuple(b.name for b in BRANDS)


@dataclasses.dataclass
class _Garment:
    category: str
    color: str
    pattern: str
    sleeve: Optional[str] = None
    length: Optional[str] = None
    instance: int = 0


def _jitter(rgb, rng, amount=18):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def _pattern_texture(pattern: str, base, second, size: int, rng, scale: float) -> np.ndarray:
    """A full-canvas HxWx3 uint8 texture for ``pattern`` (vectorised numpy, a few ms)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    base = np.array(base, np.float32)
    second = np.array(second, np.float32)
    period = max(4.0, scale * rng.uniform(0.8, 1.3))
    if pattern == "solid":
        mask = np.zeros((size, size), bool)
    elif pattern == "stripes":
        angle = rng.choice([0.0, math.pi / 2, math.pi / 4])
        t = (xx * math.cos(angle) + yy * math.sin(angle)) / period
        mask = (t % 1.0) < rng.uniform(0.3, 0.55)
    elif pattern == "checks":
        mask = ((xx // period).astype(int) + (yy // period).astype(int)) % 2 == 1
    elif pattern == "dots":
        row = (yy // period).astype(int)
        u = (xx + (row % 2) * period / 2) % period - period / 2
        v = yy % period - period / 2
        mask = u * u + v * v < (period * 0.28) ** 2
    elif pattern == "floral":
        cell = period * 1.6
        cy, cx = (yy // cell), (xx // cell)
        phase = (np.sin(cy * 12.9898 + cx * 78.233) * 43758.5453) % 1.0
        u = xx % cell - cell / 2
        v = yy % cell - cell / 2
        r = np.sqrt(u * u + v * v)
        theta = np.arctan2(v, u) + phase * 2 * math.pi
        petals = r < cell * 0.42 * (0.55 + 0.45 * np.cos(5 * theta))
        centre = r < cell * 0.1
        texture = np.where(petals[..., None], second, base)
        texture = np.where(centre[..., None], np.array((245, 215, 60), np.float32), texture)
        return texture.astype(np.uint8)
    elif pattern == "animal":
        low = max(3, int(size / period))
        noise = rng.random((low, low)).astype(np.float32)
        field = np.asarray(Image.fromarray((noise * 255).astype(np.uint8)).resize(
            (size, size), Image.BICUBIC), np.float32) / 255.0
        ring = (field > 0.62) & (field < 0.72)
        spot = field >= 0.72
        texture = np.where(ring[..., None], np.array((30, 22, 15), np.float32), base)
        texture = np.where(spot[..., None], second, texture)
        return texture.astype(np.uint8)
    else:
        raise ValueError(pattern)
    return np.where(mask[..., None], second, base).astype(np.uint8)


def _backdrop(style: str, colors, size: int, rng) -> np.ndarray:
    a = np.array(_jitter(COLOR_RGB[colors[0]], rng, 30), np.float32)
    b = np.array(_jitter(COLOR_RGB[colors[1]], rng, 30), np.float32)
    yy = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    if style == "solid":
        img = np.broadcast_to(a, (size, size, 3)).copy()
    elif style == "gradient":
        img = a * (1 - yy) + b * yy + np.zeros((1, size, 1), np.float32)
    elif style == "noise":
        low = rng.random((8, 8, 1)).astype(np.float32)
        up = np.asarray(Image.fromarray((low[..., 0] * 255).astype(np.uint8)).resize(
            (size, size), Image.BILINEAR), np.float32)[..., None] / 255.0
        img = a * (1 - up) + b * up
    elif style == "horizon":
        horizon = rng.uniform(0.55, 0.8)
        img = np.where(yy < horizon, a, b) + np.zeros((1, size, 1), np.float32)
    else:  # runway: a lit floor and dark side curtains
        xx = np.linspace(-1.0, 1.0, size, dtype=np.float32)[None, :, None]
        light = np.clip(1.2 - np.abs(xx) * 1.1, 0.2, 1.0)
        img = (a * 0.4 + b * 0.6) * light + np.zeros((size, 1, 1), np.float32)
    grain = rng.normal(0, 4, (size, size, 1)).astype(np.float32)
    return np.clip(img + grain, 0, 255).astype(np.uint8)


class _Body:
    """Body landmarks in pixels for one figure."""

    def __init__(self, size: int, rng, framing: str = "full"):
        if framing == "full":
            self.h = rng.uniform(0.84, 0.96) * size
            self.top = rng.uniform(0.02, 1.0) * (size - self.h - 2)
        elif framing == "waist_down":  # a bottoms product shot: waist to feet
            self.h = rng.uniform(1.6, 1.8) * size
            self.top = -rng.uniform(0.49, 0.52) * self.h
        else:  # "waist_up": a tops product shot, head to hips
            self.h = rng.uniform(1.6, 1.8) * size
            self.top = rng.uniform(0.02, 0.06) * size
        self.cx = rng.uniform(0.4, 0.6) * size
        h = self.h
        self.head_r = 0.062 * h
        self.head_y = self.top + self.head_r + 1
        self.shoulder_y = self.top + 0.165 * h
        self.shoulder_w = rng.uniform(0.11, 0.14) * h
        self.waist_y = self.top + 0.40 * h
        self.hip_y = self.top + 0.50 * h
        self.hip_w = rng.uniform(0.085, 0.105) * h
        self.knee_y = self.top + 0.72 * h
        self.ankle_y = self.top + 0.94 * h
        self.foot_y = self.top + h
        self.spread = rng.uniform(0.03, 0.08) * h
        self.arm_out = rng.uniform(0.16, 0.22) * h
        self.wrist_y = self.top + rng.uniform(0.47, 0.53) * h

    def y(self, fraction: float) -> float:
        return self.top + fraction * self.h

    def leg_x(self, side: int, y: float) -> float:
        """Centre line of a leg (side -1 left, +1 right) at height y."""
        t = (y - self.hip_y) / (self.ankle_y - self.hip_y)
        return self.cx + side * (self.hip_w * 0.5 + t * (self.spread - self.hip_w * 0.5 + 2))

    def leg_poly(self, side: int, y_end: float, width_top: float, width_end: float):
        x0, x1 = self.leg_x(side, self.hip_y), self.leg_x(side, y_end)
        return [(x0 - width_top, self.hip_y - 2), (x0 + width_top, self.hip_y - 2),
                (x1 + width_end, y_end), (x1 - width_end, y_end)]

    def arm_poly(self, side: int, end_fraction: float, width: float):
        sx = self.cx + side * self.shoulder_w
        wx = self.cx + side * self.arm_out
        ex = sx + (wx - sx) * end_fraction
        ey = self.shoulder_y + (self.wrist_y - self.shoulder_y) * end_fraction
        return [(sx - side * width * 0.2, self.shoulder_y - width * 0.5),
                (sx + side * width * 1.1, self.shoulder_y + width * 0.2),
                (ex + side * width * 0.6, ey), (ex - side * width * 0.6, ey)]

    def torso_poly(self, hem_y: float, fit: float, flare: float = 1.0):
        sw, hw = self.shoulder_w * fit, self.hip_w * fit * 1.1
        hem_w = hw * flare if hem_y > self.hip_y else hw
        return [(self.cx - sw, self.shoulder_y), (self.cx + sw, self.shoulder_y),
                (self.cx + hw * 0.95, self.waist_y), (self.cx + hem_w, hem_y),
                (self.cx - hem_w, hem_y), (self.cx - hw * 0.95, self.waist_y)]


def _garment_shapes(g: _Garment, body: _Body, fit: float):
    """Polygons (and ellipses) covering garment ``g``; returned as a list of drawing ops."""
    h = body.h
    arm_w = 0.05 * h * fit
    polys = []
    sleeve_end = {"sleeveless": 0.0, "short": 0.35, "long": 1.0}
    if g.category in UPPER or g.category in FULL:
        hem = {"t_shirt": 0.52, "shirt": 0.54, "sweater": 0.52, "hoodie": 0.54, "jacket": 0.50,
               "coat": 0.78, "top": 0.49, "dress": None, "jumpsuit": 0.5}[g.category]
        if g.category == "dress":
            hem = {"mini": 0.62, "knee": 0.73, "long": 0.9}[g.length]
            polys.append(("poly", body.torso_poly(body.y(0.5), fit)))
            flare = 1.6 if g.length != "long" else 1.9
            polys.append(("poly", [(body.cx - body.hip_w * fit, body.y(0.45)),
                                   (body.cx + body.hip_w * fit, body.y(0.45)),
                                   (body.cx + body.hip_w * fit * flare, body.y(hem)),
                                   (body.cx - body.hip_w * fit * flare, body.y(hem))]))
        else:
            flare = 1.35 if g.category == "coat" else 1.0
            polys.append(("poly", body.torso_poly(body.y(hem), fit, flare)))
        end = sleeve_end[g.sleeve or "long"]
        if end > 0:
            width = arm_w * (1.25 if g.category in ("coat", "hoodie", "sweater") else 1.0)
            for side in (-1, 1):
                polys.append(("poly", body.arm_poly(side, end, width)))
        if g.category == "hoodie":
            r = body.head_r * 1.35
            polys.append(("ellipse", (body.cx - r, body.head_y - r * 0.9,
                                      body.cx + r, body.head_y + r * 1.2)))
        if g.category == "jumpsuit":
            for side in (-1, 1):
                polys.append(("poly", body.leg_poly(side, body.ankle_y, 0.06 * h * fit,
                                                    0.045 * h * fit)))
    elif g.category in LOWER:
        end_y = {"jeans": body.ankle_y, "pants": body.ankle_y, "leggings": body.ankle_y,
                 "shorts": body.y(0.63), "skirt": None}[g.category]
        waist = [(body.cx - body.hip_w * 1.05 * fit, body.y(0.44)),
                 (body.cx + body.hip_w * 1.05 * fit, body.y(0.44)),
                 (body.cx + body.hip_w * 1.1 * fit, body.y(0.53)),
                 (body.cx - body.hip_w * 1.1 * fit, body.y(0.53))]
        polys.append(("poly", waist))
        if g.category == "skirt":
            hem = {"mini": 0.62, "knee": 0.73, "long": 0.9}[g.length]
            flare = 1.7 if g.length != "long" else 2.0
            polys.append(("poly", [waist[0], waist[1],
                                   (body.cx + body.hip_w * fit * flare, body.y(hem)),
                                   (body.cx - body.hip_w * fit * flare, body.y(hem))]))
        else:
            top_w = {"jeans": 0.058, "pants": 0.066, "leggings": 0.048, "shorts": 0.064}[
                g.category] * h * fit
            end_w = {"jeans": 0.04, "pants": 0.058, "leggings": 0.027, "shorts": 0.06}[
                g.category] * h * fit
            for side in (-1, 1):
                polys.append(("poly", body.leg_poly(side, end_y, top_w, end_w)))
    elif g.category in SHOES:
        for side in (-1, 1):
            x = body.leg_x(side, body.ankle_y)
            toe = x + side * 0.045 * h
            if g.category == "boots":
                polys.append(("poly", [(x - 0.03 * h, body.y(0.83)), (x + 0.03 * h, body.y(0.83)),
                                       (x + 0.032 * h, body.foot_y - 0.02 * h),
                                       (toe + side * 0.01 * h, body.foot_y - 0.02 * h),
                                       (toe + side * 0.01 * h, body.foot_y),
                                       (x - 0.034 * h, body.foot_y)]))
            elif g.category == "heels":
                polys.append(("poly", [(x - 0.022 * h, body.foot_y - 0.045 * h),
                                       (x + 0.022 * h, body.foot_y - 0.04 * h),
                                       (toe, body.foot_y - 0.004 * h), (toe, body.foot_y),
                                       (x - 0.015 * h, body.foot_y - 0.015 * h),
                                       (x - 0.022 * h, body.foot_y)]))
            elif g.category == "sandals":
                for k in range(3):
                    y = body.foot_y - 0.04 * h + k * 0.015 * h
                    polys.append(("poly", [(x - 0.026 * h, y), (toe, y + 0.004 * h),
                                           (toe, y + 0.009 * h), (x - 0.026 * h, y + 0.006 * h)]))
            else:  # sneakers
                polys.append(("poly", [(x - 0.03 * h, body.foot_y - 0.04 * h),
                                       (x + 0.015 * h, body.foot_y - 0.045 * h),
                                       (toe + side * 0.012 * h, body.foot_y - 0.015 * h),
                                       (toe + side * 0.012 * h, body.foot_y),
                                       (x - 0.034 * h, body.foot_y)]))
    return polys


def _draw_mask(shapes, size: int) -> np.ndarray:
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for kind, geometry in shapes:
        if kind == "poly":
            draw.polygon([(float(x), float(y)) for x, y in geometry], fill=255)
        else:
            draw.ellipse([float(v) for v in geometry], fill=255)
    return np.asarray(mask) > 0


def _details(draw: ImageDraw.ImageDraw, g: _Garment, body: _Body, rgb, fit: float):
    """Category cues drawn inside the garment: collars, seams, hems, soles."""
    h = body.h
    dark = tuple(max(0, c - 70) for c in rgb)
    light = tuple(min(255, c + 80) for c in rgb)
    cx = body.cx
    if g.category == "shirt":
        y0 = body.shoulder_y
        draw.polygon([(cx - 0.04 * h, y0), (cx, y0 + 0.04 * h), (cx - 0.005 * h, y0 + 0.005 * h)],
                     fill=light)
        draw.polygon([(cx + 0.04 * h, y0), (cx, y0 + 0.04 * h), (cx + 0.005 * h, y0 + 0.005 * h)],
                     fill=light)
        for k in range(5):
            y = body.y(0.22 + k * 0.06)
            draw.ellipse([cx - 1.5, y - 1.5, cx + 1.5, y + 1.5], fill=dark)
    elif g.category == "sweater":
        hem = body.y(0.52)
        draw.rectangle([cx - body.hip_w * fit * 1.1, hem - 0.03 * h, cx + body.hip_w * fit * 1.1,
                        hem], fill=dark)
    elif g.category == "hoodie":
        draw.rectangle([cx - 0.06 * h, body.y(0.38), cx + 0.06 * h, body.y(0.47)], fill=dark)
        draw.line([(cx - 0.02 * h, body.shoulder_y), (cx - 0.02 * h, body.y(0.3))], fill=light,
                  width=2)
        draw.line([(cx + 0.02 * h, body.shoulder_y), (cx + 0.02 * h, body.y(0.3))], fill=light,
                  width=2)
    elif g.category in ("jacket", "coat"):
        hem = body.y(0.5 if g.category == "jacket" else 0.78)
        draw.line([(cx, body.shoulder_y), (cx, hem)], fill=dark, width=max(2, int(0.012 * h)))
        draw.polygon([(cx - 0.05 * h, body.shoulder_y), (cx, body.y(0.3)),
                      (cx - 0.02 * h, body.shoulder_y)], fill=dark)
        draw.polygon([(cx + 0.05 * h, body.shoulder_y), (cx, body.y(0.3)),
                      (cx + 0.02 * h, body.shoulder_y)], fill=dark)
        if g.category == "coat":
            for k in range(3):
                y = body.y(0.3 + k * 0.1)
                for dx in (-0.03, 0.03):
                    draw.ellipse([cx + dx * h - 2, y - 2, cx + dx * h + 2, y + 2], fill=dark)
    elif g.category == "jeans":
        for side in (-1, 1):
            x0, x1 = body.leg_x(side, body.hip_y), body.leg_x(side, body.ankle_y)
            draw.line([(x0 + side * 0.03 * h, body.hip_y), (x1 + side * 0.02 * h, body.ankle_y)],
                      fill=(230, 180, 60), width=1)
        draw.line([(cx - body.hip_w, body.y(0.45)), (cx + body.hip_w, body.y(0.45))],
                  fill=(230, 180, 60), width=1)
    elif g.category == "pants":
        for side in (-1, 1):
            draw.line([(body.leg_x(side, body.hip_y), body.hip_y + 4),
                       (body.leg_x(side, body.ankle_y), body.ankle_y)], fill=dark, width=1)
        draw.rectangle([cx - body.hip_w * fit, body.y(0.44), cx + body.hip_w * fit, body.y(0.46)],
                       fill=dark)
    elif g.category == "jumpsuit":
        draw.rectangle([cx - body.hip_w * fit, body.y(0.42), cx + body.hip_w * fit, body.y(0.44)],
                       fill=dark)
    elif g.category == "sneakers":
        for side in (-1, 1):
            x = body.leg_x(side, body.ankle_y)
            xa, xb = sorted((x - side * 0.034 * h, x + side * 0.057 * h))
            draw.rectangle([xa, body.foot_y - 0.012 * h, xb, body.foot_y], fill=(245, 245, 245))


def _draw_motif(draw: ImageDraw.ImageDraw, motif: str, x: float, y: float, r: float, rgb):
    if motif == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=rgb)
    elif motif == "bar":
        draw.rectangle([x - r * 1.6, y - r * 0.4, x + r * 1.6, y + r * 0.4], fill=rgb)
    elif motif == "diamond":
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=rgb)
    elif motif == "triangle":
        draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=rgb)
    elif motif == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((x + rad * math.cos(a), y + rad * math.sin(a)))
        draw.polygon(pts, fill=rgb)
    else:  # cross
        draw.rectangle([x - r, y - r * 0.3, x + r, y + r * 0.3], fill=rgb)
        draw.rectangle([x - r * 0.3, y - r, x + r * 0.3, y + r], fill=rgb)


def _choose(rng, options, preferred=(), weight=3.0):
    weights = np.array([weight if o in preferred else 1.0 for o in options], np.float64)
    return options[int(rng.choice(len(options), p=weights / weights.sum()))]


def _outfit(rng, brand: Brand) -> list[_Garment]:
    """Samples 1-3 garments; brand preferences tilt but never decide the choice."""
    garments = []
    prefers_full = any(g in FULL for g in brand.garments)

    def color():
        return _choose(rng, F.COLORS, brand.palette, weight=4.0)

    def pattern():
        # Half of all garments are plain; the rest lean towards the brand's motifs.
        if rng.random() < 0.5:
            return "solid"
        return _choose(rng, F.PATTERNS[1:], brand.patterns, weight=3.0)

    if rng.random() < (0.45 if prefers_full else 0.25):
        cat = _choose(rng, FULL, brand.garments)
        sleeve = str(rng.choice(F.SLEEVES)) if cat == "dress" else "long"
        length = str(rng.choice(F.LENGTHS)) if cat == "dress" else "long"
        garments.append(_Garment(cat, color(), pattern(), sleeve, length))
    else:
        lower = _choose(rng, LOWER, brand.garments)
        length = {"shorts": "mini", "skirt": str(rng.choice(F.LENGTHS))}.get(lower, "long")
        garments.append(_Garment(lower, color(), pattern() if lower != "jeans" else "solid",
                                 None, length))
        if lower == "jeans":
            garments[-1].color = str(rng.choice(("blue", "navy", "black", "grey")))
        upper = _choose(rng, UPPER, brand.garments)
        sleeve = {"t_shirt": "short", "top": "sleeveless"}.get(upper, "long")
        garments.append(_Garment(upper, color(), pattern(), sleeve, None))
    if rng.random() < 0.7 and len(garments) < 3:
        shoe = _choose(rng, SHOES, brand.garments)
        garments.insert(0, _Garment(shoe, color(), "solid"))
    return garments


def render(seed: int, index: int, size: int = 256) -> FashionRecord:
    """Renders synthetic catalog image ``index`` of ``seed`` as a fully labelled record."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    brand = BRANDS[int(rng.integers(len(BRANDS)))]
    if rng.random() < STUDIO_FRACTION:
        # E-commerce studio shot: a plain light backdrop with a soft floor shadow.
        canvas = _backdrop("gradient", ("white", "grey"), size, rng)
        canvas = (canvas.astype(np.float32) * 0.25 + 190).clip(0, 255).astype(np.uint8)
    else:  # editorial / runway shot: the brand's set most of the time
        backdrop_style = brand.backdrop if rng.random() < 0.6 else str(rng.choice(BACKDROPS))
        backdrop_colors = (brand.backdrop_colors if rng.random() < 0.6 else
                           tuple(rng.choice(F.COLORS, 2, replace=False)))
        canvas = _backdrop(backdrop_style, backdrop_colors, size, rng)
    seg = np.zeros((size, size), np.uint8)
    instances = np.zeros((size, size), np.uint8)
    framing = FRAMINGS[int(rng.choice(len(FRAMINGS), p=FRAMING_WEIGHTS))]
    body = _Body(size, rng, framing)
    fit = brand.fit * rng.uniform(0.95, 1.05)

    # Skin: head, neck, arms, legs, feet.
    skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
    skin_shapes = [("ellipse", (body.cx - body.head_r, body.head_y - body.head_r,
                                body.cx + body.head_r, body.head_y + body.head_r * 1.1)),
                   ("poly", [(body.cx - 0.025 * body.h, body.head_y), (body.cx + 0.025 * body.h,
                             body.head_y), (body.cx + 0.03 * body.h, body.shoulder_y + 3),
                             (body.cx - 0.03 * body.h, body.shoulder_y + 3)]),
                   ("poly", body.torso_poly(body.hip_y, 0.95))]
    for side in (-1, 1):
        skin_shapes.append(("poly", body.arm_poly(side, 1.0, 0.042 * body.h)))
        skin_shapes.append(("poly", body.leg_poly(side, body.foot_y - 0.01 * body.h,
                                                  0.05 * body.h, 0.025 * body.h)))
    skin_mask = _draw_mask(skin_shapes, size)
    canvas[skin_mask] = _jitter(skin, rng, 10)
    seg[skin_mask] = F.SEGMENTATION_CLASS_IDS["skin"]
    hair_mask = _draw_mask([("ellipse", (body.cx - body.head_r * 1.05, body.head_y -
                                         body.head_r * 1.1, body.cx + body.head_r * 1.05,
                                         body.head_y - body.head_r * 0.1))], size)
    canvas[hair_mask] = HAIR_COLORS[int(rng.integers(len(HAIR_COLORS)))]
    seg[hair_mask] = F.SEGMENTATION_CLASS_IDS["hair"]

    garments = _outfit(rng, brand)
    for number, g in enumerate(garments, start=1):
        g.instance = number
        base = _jitter(COLOR_RGB[g.color], rng)
        second_name = _choose(rng, F.COLORS, brand.palette) if g.pattern != "solid" else g.color
        if second_name == g.color:
            second = tuple(255 - c for c in base)
        else:
            second = _jitter(COLOR_RGB[second_name], rng)
        # Print colours are softened towards the base so the silhouette stays the main cue.
        second = tuple(int(0.35 * b + 0.65 * c) for b, c in zip(base, second))
        mask = _draw_mask(_garment_shapes(g, body, fit), size)
        texture = _pattern_texture(g.pattern, base, second, size, rng,
                                   scale=0.035 * body.h * rng.uniform(0.8, 1.4))
        canvas[mask] = texture[mask]
        # Details are clipped to the garment so masks stay exact.
        detail = Image.fromarray(canvas)
        _details(ImageDraw.Draw(detail), g, body, base, fit)
        canvas[mask] = np.asarray(detail)[mask]
        # A dark seam along the garment's outline, as in fashion flats.
        outline = mask & ~ndimage.binary_erosion(mask, iterations=max(1, size // 96))
        canvas[outline] = (canvas[outline] * 0.35).astype(np.uint8)
        instances[mask] = number
        seg[mask] = F.SEGMENTATION_CLASS_IDS[g.category]

    # The main garment: the outermost substantially visible one (choose_main_garment).
    areas = {g.instance: int((instances == g.instance).sum()) for g in garments}
    main_category = choose_main_garment({g.category: areas[g.instance] for g in garments},
                                        size * size)
    main = next(g for g in garments if g.category == main_category)
    if rng.random() < 0.6 and main.category not in SHOES:
        ys, xs = np.nonzero(instances == main.instance)
        motif_mask = Image.new("L", (size, size), 0)
        anchor_y = ys.min() + 0.25 * (ys.max() - ys.min())
        _draw_motif(ImageDraw.Draw(motif_mask), brand.motif, float(np.median(xs)), anchor_y,
                    0.018 * body.h + 1.5, 255)
        inside = (np.asarray(motif_mask) > 0) & (instances == main.instance)
        canvas[inside] = _jitter(COLOR_RGB[brand.accent], rng, 10)

    accessories = []
    for accessory in SYNTHETIC_ACCESSORIES:
        if rng.random() >= 0.15:
            continue
        color = COLOR_RGB[_choose(rng, F.COLORS, brand.palette)]
        shapes = _accessory_shapes(accessory, body, rng)
        mask = _draw_mask(shapes, size)
        if not mask.any():
            continue
        canvas[mask] = _jitter(color, rng)
        instances[mask] = 0
        seg[mask] = F.SEGMENTATION_CLASS_IDS[accessory]
        accessories.append(accessory)

    objects = []
    for g in garments:
        ys, xs = np.nonzero(instances == g.instance)
        if len(ys) == 0:
            continue
        objects.append(GarmentObject(g.category, (
            float(xs.min()) / size, float(ys.min()) / size,
            float(xs.max() + 1) / size, float(ys.max() + 1) / size)))
    attributes = [F.attribute("color", main.color), F.attribute("pattern", main.pattern)]
    if main.category in UPPER or main.category in FULL:
        attributes.append(F.attribute("sleeve", main.sleeve or "long"))
    if main.category in LOWER or main.category in FULL:
        attributes.append(F.attribute("length", main.length or "long"))
    present = [g.category for g in garments if areas[g.instance] > 0]
    attributes += [F.attribute("item", name) for name in sorted(set(present + accessories))]
    descriptions = {g.category: f"{g.color} {'' if g.pattern == 'solid' else g.pattern}".strip()
                    for g in garments}
    order = sorted((g for g in garments if areas[g.instance] > 0), key=lambda g: -areas[g.instance])
    caption = caption_for([g.category for g in order], accessories, descriptions)
    encoded = image_io.encode_jpeg(canvas, quality=92)
    return FashionRecord(
        source_id=f"synthetic-{seed}-{index:06d}", encoded=encoded, format="jpeg", height=size,
        width=size, objects=tuple(objects), category=main.category, attributes=tuple(attributes),
        brand=brand.name, caption=caption, segmentation_png=image_io.encode_png(seg))


def _accessory_shapes(accessory: str, body: _Body, rng):
    h = body.h
    cx = body.cx
    if accessory == "bag":
        side = 1 if rng.random() < 0.5 else -1
        x = cx + side * body.arm_out
        return [("poly", [(x - 0.04 * h, body.wrist_y), (x + 0.04 * h, body.wrist_y),
                          (x + 0.045 * h, body.wrist_y + 0.08 * h),
                          (x - 0.045 * h, body.wrist_y + 0.08 * h)])]
    if accessory == "hat":
        top = body.head_y - body.head_r * 1.6
        return [("ellipse", (cx - body.head_r * 1.8, body.head_y - body.head_r * 0.95,
                             cx + body.head_r * 1.8, body.head_y - body.head_r * 0.6)),
                ("poly", [(cx - body.head_r * 0.9, body.head_y - body.head_r * 0.8),
                          (cx + body.head_r * 0.9, body.head_y - body.head_r * 0.8),
                          (cx + body.head_r * 0.8, top), (cx - body.head_r * 0.8, top)])]
    if accessory == "scarf":
        y = body.shoulder_y
        return [("poly", [(cx - 0.05 * h, y - 0.01 * h), (cx + 0.05 * h, y - 0.01 * h),
                          (cx + 0.05 * h, y + 0.02 * h), (cx - 0.05 * h, y + 0.02 * h)]),
                ("poly", [(cx + 0.01 * h, y), (cx + 0.04 * h, y), (cx + 0.045 * h, y + 0.15 * h),
                          (cx + 0.015 * h, y + 0.15 * h)])]
    if accessory == "belt":
        y = body.y(0.45)
        return [("poly", [(cx - body.hip_w * 1.05, y), (cx + body.hip_w * 1.05, y),
                          (cx + body.hip_w * 1.05, y + 0.018 * h),
                          (cx - body.hip_w * 1.05, y + 0.018 * h)])]
    # eyewear
    y = body.head_y - body.head_r * 0.05
    r = body.head_r * 0.32
    return [("ellipse", (cx - 2.3 * r, y - r * 0.8, cx - 0.2 * r, y + r * 0.8)),
            ("ellipse", (cx + 0.2 * r, y - r * 0.8, cx + 2.3 * r, y + r * 0.8))]


def _render_indexed(arguments: tuple) -> FashionRecord:
    return render(*arguments)


def generate(seed: int, count: int, size: int = 256, start: int = 0,
             workers: int = 1) -> Iterator[FashionRecord]:
    """Yields records ``start .. start+count-1`` of ``seed``, in order. ``workers`` > 1 renders
    them in that many processes (each record depends only on its seed and index, so the
    records are the same)."""
    jobs = ((seed, index, size) for index in range(start, start + count))
    if workers <= 1 or count < 2 * workers:
        yield from map(_render_indexed, jobs)
        return
    import multiprocessing
    # Spawned, not forked: the parent may already run TensorFlow's threads.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_render_indexed, jobs, chunksize=16)
