"""The quality dimensions and distortion types every part of vqscope speaks of.

From ../shared/DESIGN.md: five dimensions that each gather some distortion types, plus
"overall". The synthetic generator, the heads, the descriptions and `vqscope ask` all read
these names from here, so a type can never be spelled two ways.
"""

from __future__ import annotations

DIMENSIONS: tuple[str, ...] = ("color", "noise", "artifact", "blur", "temporal", "overall")

# distortion type -> the dimension it degrades
DISTORTION_DIMENSION: dict[str, str] = {
    "overexposure": "color",
    "underexposure": "color",
    "color_cast": "color",
    "noise": "noise",
    "compression": "artifact",
    "mosaic": "artifact",
    "oversharpening": "artifact",
    "defocus_blur": "blur",
    "motion_blur": "blur",
    "stutter": "temporal",
    "jitter": "temporal",
    "flicker": "temporal",
}
DISTORTION_TYPES: tuple[str, ...] = tuple(DISTORTION_DIMENSION)

# What a viewer would call each type, for descriptions and questions.
DISTORTION_TEXT: dict[str, str] = {
    "overexposure": "overexposure (blown-out highlights)",
    "underexposure": "underexposure (too dark)",
    "color_cast": "a colour cast or wrong saturation",
    "noise": "noise",
    "compression": "compression artifacts (blocking, ringing)",
    "mosaic": "mosaic (pixelation)",
    "oversharpening": "oversharpening (halos)",
    "defocus_blur": "defocus blur",
    "motion_blur": "motion blur",
    "stutter": "stutter (frozen or dropped frames)",
    "jitter": "jitter (camera shake)",
    "flicker": "flicker",
}


def types_of(dimension: str) -> tuple[str, ...]:
    """Distortion types of a dimension ("overall" has all of them)."""
    if dimension == "overall":
        return DISTORTION_TYPES
    return tuple(t for t, d in DISTORTION_DIMENSION.items() if d == dimension)
