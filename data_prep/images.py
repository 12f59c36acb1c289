"""The resize cache: every source image decoded once, re-encoded as an RGB JPEG with a bounded shorter side.

Decoding full-size JPEGs on the CPU (~200-300 images/s per core) starves a GPU;
training reads these small files instead. Unreadable images are reported, not
raised, so one corrupt file does not stop a dataset of a million.
"""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps

log = logging.getLogger("data_prep")


def resize_image(src: str | Path, dst: str | Path, shorter: int = 256, quality: int = 95) -> str | None:
    """Write `src` as an RGB JPEG whose shorter side is at most `shorter`; None, or the error if unreadable.

    Smaller images are kept at their size (the readers' transforms resize them);
    an existing `dst` is kept (re-runs are cheap). Written atomically.
    """
    dst = Path(dst)
    if dst.exists():
        return None
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        with Image.open(src) as image:
            image.draft("RGB", (shorter, shorter))  # JPEG: let the decoder downscale by 2/4/8 for free
            image = ImageOps.exif_transpose(image).convert("RGB")
            scale = shorter / min(image.size)
            if scale < 1:
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
            dst.parent.mkdir(parents=True, exist_ok=True)
            image.save(tmp, format="JPEG", quality=quality)
        os.replace(tmp, dst)
    except Exception as err:  # noqa: BLE001  (any decoder error means: skip this image)
        tmp.unlink(missing_ok=True)
        return f"{type(err).__name__}: {err}"
    return None


def _resize_job(job: tuple) -> str | None:
    return resize_image(*job)


def resize_all(jobs: list[tuple], workers: int = 1, name: str = "images", every: float = 10.0) -> list[str | None]:
    """resize_image(src, dst, shorter, quality) for each job, in `workers` processes; errors per job."""
    Image.MAX_IMAGE_PIXELS = None  # large landmark/iNat photos are legitimate, not decompression bombs
    results: list[str | None] = []
    began = last = time.monotonic()
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers, initializer=_allow_large_images) as pool:
            stream = pool.map(_resize_job, jobs, chunksize=max(1, min(256, len(jobs) // (8 * workers))))
            for result in stream:
                results.append(result)
                last = _progress(name, len(results), len(jobs), began, last, every)
    else:
        for job in jobs:
            results.append(_resize_job(job))
            last = _progress(name, len(results), len(jobs), began, last, every)
    elapsed = time.monotonic() - began
    log.info("%s: %d images cached in %.1fs (%.0f images/s), %d unreadable", name, len(jobs), elapsed,
             len(jobs) / max(elapsed, 1e-9), sum(r is not None for r in results))
    return results


def _allow_large_images() -> None:
    Image.MAX_IMAGE_PIXELS = None


def _progress(name: str, done: int, total: int, began: float, last: float, every: float) -> float:
    now = time.monotonic()
    if now - last < every:
        return last
    rate = done / max(now - began, 1e-9)
    log.info("%s: %d/%d images (%.1f%%), %.0f images/s, ETA %.0fs", name, done, total, 100 * done / total, rate,
             (total - done) / max(rate, 1e-9))
    return now
