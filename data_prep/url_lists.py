"""Datasets published as lists of image URLs (iMaterialist): fetch each image once, reject what dead
hosts serve instead of a photo, and report per class what was dropped."""
from __future__ import annotations

import hashlib
import io
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable
from urllib.request import Request, urlopen

from data_prep.listing import Listing, Sample, find_file, reader_options, text_lines

log = logging.getLogger("data_prep")


# what dead hosts serve instead of a photo: the URL they redirect to (Flickr's "photo unavailable",
# imgur's "removed" image); anything with a shorter side below MIN_IMAGE_SIDE pixels; anything PIL
# cannot decode (an HTML error page served with HTTP 200); and content served for many URLs of
# several classes (PLACEHOLDER_REPEATS), which no product photo is.
PLACEHOLDER_URLS = ("photo_unavailable", "/removed.png", "no_image", "noimage", "image_not_found", "placeholder")
MIN_IMAGE_SIDE = 32
PLACEHOLDER_REPEATS = 20


def check_fetched_image(data: bytes, final_url: str, opts: dict) -> str | None:
    """Why fetched bytes are not a usable photo (a placeholder, a tiny image, not an image), or None.

    opts (a url_list config's options): placeholder_urls (substrings of the final URL after
    redirects), min_image_side (pixels), placeholder_sha256 (hex digests of known placeholders).
    """
    from PIL import Image, UnidentifiedImageError

    marks = [m.lower() for m in (opts.get("placeholder_urls") or PLACEHOLDER_URLS)]
    hit = next((m for m in marks if m in final_url.lower()), None)
    if hit:
        return f"placeholder: redirected to {final_url}"
    if hashlib.sha256(data).hexdigest() in set(opts.get("placeholder_sha256") or []):
        return "placeholder: a known placeholder image (options.placeholder_sha256)"
    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        start = data[:40].decode("latin-1").strip().replace("\n", " ")
        return f"not an image ({type(err).__name__}; starts {start!r})"
    side = int(opts.get("min_image_side", MIN_IMAGE_SIDE))
    if min(size) < side:
        return f"tiny image {size[0]}x{size[1]} (shorter side below options.min_image_side={side}): a placeholder"
    return None


def _fetch_image(url: str, dst: Path, timeout: float, opts: dict) -> tuple[str, str] | None:
    """Fetch one image to `dst`; None when saved, else ("unreachable" | "rejected", why)."""
    try:
        with urlopen(Request(url, headers={"User-Agent": "model-selection-benchmark/data_prep"}), timeout=timeout) as resp:
            data, final_url = resp.read(), resp.geturl() or url
    except Exception as err:  # noqa: BLE001  (dead URLs are expected; record and move on)
        return "unreachable", f"{type(err).__name__}: {err}"
    why = check_fetched_image(data, final_url, opts)
    if why:
        return "rejected", why
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(dst)
    return None


def _read_table(path: Path) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in text_lines(path) if "\t" in line) if path.exists() else {}


def _append_table(path: Path, rows: dict[str, str]) -> None:
    with path.open("a") as f:
        f.writelines(f"{k}\t{v}\n" for k, v in rows.items())


def read_url_list(dataset: dict, raw: Path) -> Listing:
    """iMaterialist-style {"images": [{"id", "url", "class"}]} lists: fetch every image once, in threads.

    URLs that fail go to unreachable_<part>.txt; content that is not a photo (check_fetched_image, and
    the same bytes served for options.placeholder_repeats URLs of several classes) goes to
    rejected_<part>.tsv with the reason. Neither is retried on the next run (delete those files to
    retry); both are reported per class (stats.json url_list_dropped_per_class and dropped).
    """
    opts = reader_options(dataset)
    threads, timeout = int(opts.get("fetch_threads", 16)), float(opts.get("fetch_timeout_s", 30))
    lists = opts.get("lists") or {"train": "train.json", "val": "val.json"}
    entries_of, classes = {}, set()
    target = lambda part, e: raw / "images" / part / str(e["class"]) / (e["id"] if Path(e["id"]).suffix else f"{e['id']}.jpg")  # noqa: E731
    for part, file_name in lists.items():
        entries = json.loads(find_file(raw, file_name, dataset).read_text())["images"]
        entries_of[part] = entries
        failed_file, rejected_file = raw / f"unreachable_{part}.txt", raw / f"rejected_{part}.tsv"
        failed = set(text_lines(failed_file)) if failed_file.exists() else set()
        rejected = _read_table(rejected_file)
        todo = [e for e in entries if e["id"] not in failed and e["id"] not in rejected and not target(part, e).exists()]
        if todo:
            log.info("%s: fetching %d %s images with %d threads", dataset["name"], len(todo), part, threads)
            with ThreadPoolExecutor(threads) as pool:
                results = list(pool.map(lambda e: _fetch_image(e["url"], target(part, e), timeout, opts), todo))
            with failed_file.open("a") as f:
                f.writelines(f"{e['id']}\n" for e, r in zip(todo, results) if r and r[0] == "unreachable")
            _append_table(rejected_file, {e["id"]: r[1] for e, r in zip(todo, results) if r and r[0] == "rejected"})
    _reject_repeated_content(dataset, raw, entries_of, target, opts)
    samples, skipped, unreachable, per_class = [], [], {}, {}
    for part, entries in entries_of.items():
        failed_file = raw / f"unreachable_{part}.txt"
        failed = set(text_lines(failed_file)) if failed_file.exists() else set()
        rejected = _read_table(raw / f"rejected_{part}.tsv")
        for e in entries:
            label = f"{int(e['class']):04d}"
            classes.add(int(e["class"]))
            if e["id"] in rejected or e["id"] in failed:
                why = "unreachable URL" if e["id"] in failed else "rejected download"
                skipped.append({"path": e["url"], "reason": why, "class": label,
                                **({"error": rejected[e["id"]]} if e["id"] in rejected else {})})
                counts = per_class.setdefault(label, {})
                counts[why] = counts.get(why, 0) + 1
            elif target(part, e).exists():
                samples.append(Sample(target(part, e), label, part))
        unreachable[part] = sum(e["id"] in failed for e in entries)
    return Listing(samples, [f"{c:04d}" for c in sorted(classes)], skipped,
                   extra={"unreachable": unreachable, "url_list_dropped_per_class": dict(sorted(per_class.items()))})


def _reject_repeated_content(dataset: dict, raw: Path, entries_of: dict, target: Callable, opts: dict) -> None:
    """Bytes saved for at least options.placeholder_repeats URLs of two or more classes are a host's
    placeholder, not a product photo: delete those files and record them in rejected_<part>.tsv."""
    repeats = int(opts.get("placeholder_repeats", PLACEHOLDER_REPEATS))
    digests: dict[str, list[tuple[str, dict]]] = {}
    for part, entries in entries_of.items():
        known_file = raw / f"sha256_{part}.tsv"
        known, new = _read_table(known_file), {}
        for e in entries:
            path = target(part, e)
            if e["id"] not in known and path.exists():
                new[e["id"]] = hashlib.sha256(path.read_bytes()).hexdigest()
            if path.exists():
                digests.setdefault(known.get(e["id"]) or new[e["id"]], []).append((part, e))
        if new:
            _append_table(known_file, new)
    for digest, hits in digests.items():
        if len(hits) >= repeats and len({int(e["class"]) for _, e in hits}) >= 2:
            why = (f"placeholder: the same bytes (sha256 {digest[:12]}...) were served for {len(hits)} URLs of "
                   f"{len({int(e['class']) for _, e in hits})} classes")
            log.warning("%s: %s", dataset["name"], why)
            for part in {p for p, _ in hits}:
                _append_table(raw / f"rejected_{part}.tsv", {e["id"]: why for p, e in hits if p == part})
            for part, e in hits:
                target(part, e).unlink(missing_ok=True)
