"""Fetching and unpacking raw dataset files: resumable, checksummed, with mirror fallback.

`fetch` downloads one file (primary URL, then mirrors) into `dest.part`, resumes a
partial download with an HTTP Range request, verifies md5/sha256, and renames the
file into place only when it is complete and correct. `extract` unpacks tar/zip
archives without letting a member escape the destination. `obtain` does both for
every file of a dataset config's `download` block, or explains what to fetch by
hand for a manual dataset.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tarfile
import time
import zipfile
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, url2pathname, urlopen

from pipeline.errors import UserError

log = logging.getLogger("data_prep")

CHUNK = 1 << 20
TIMEOUT_S = 60
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")


class DataPrepError(UserError, ValueError):
    """A problem the user can fix: a bad config, a missing or corrupt file. The message says how."""


class ChecksumError(DataPrepError):
    """A downloaded or user-provided file does not have the expected checksum."""


# ---------------------------------------------------------------- checksums


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, md5: str | None = None, sha256: str | None = None, size: int | None = None) -> None:
    """Raise ChecksumError naming the file, the expected and the actual value."""
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            got = file_digest(path, algorithm)
            if got != expected.lower():
                raise ChecksumError(f"{path.name}: {algorithm} mismatch, expected {expected}, got {got}")
            return
    if size is not None and path.stat().st_size != size:  # no checksum known: the size is the only check
        raise ChecksumError(f"{path.name}: size mismatch, expected {size} bytes, got {path.stat().st_size}")


# ---------------------------------------------------------------- download


class _Progress:
    """Log bytes, MB/s and ETA at most every `every` seconds."""

    def __init__(self, name: str, start: int, total: int | None, every: float = 5.0):
        self.name, self.start, self.total, self.every = name, start, total, every
        self.began = self.last = time.monotonic()

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.every:
            return
        self.last = now
        rate = (done - self.start) / max(now - self.began, 1e-9)
        line = f"{self.name}: {done / 1e6:.1f}"
        if self.total:
            eta = (self.total - done) / rate if rate > 0 else float("inf")
            line += f"/{self.total / 1e6:.1f} MB ({100 * done / self.total:.1f}%), {rate / 1e6:.2f} MB/s, ETA {_duration(eta)}"
        else:
            line += f" MB, {rate / 1e6:.2f} MB/s"
        log.info(line)


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def _open(url: str, start: int):
    """(stream, resumed, total bytes or None). `resumed` is False when the source restarts at byte 0."""
    parsed = urlparse(url)
    if parsed.scheme == "file":  # local files resume by seeking
        path = url2pathname(parsed.path)
        stream = open(path, "rb")
        total = os.path.getsize(path)
        if start > total:
            start = 0
        stream.seek(start)
        return stream, start > 0, total
    headers = {"User-Agent": "model-selection-benchmark/data_prep"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = urlopen(Request(url, headers=headers), timeout=TIMEOUT_S)
    except HTTPError as err:
        if err.code == 416 and start:  # our partial file is not a prefix of this server's file: restart
            return _open(url, 0)
        raise
    length = resp.headers.get("Content-Length")
    resumed = bool(start) and resp.status == 206
    if start and not resumed:
        log.info("%s ignored the Range request; restarting the download from byte 0", parsed.netloc)
    total = (int(length) + (start if resumed else 0)) if length else None
    return resp, resumed, total


def _download(url: str, part: Path, size: int | None) -> None:
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start == size:
        return  # complete already; the checksum decides
    if size is not None and start > size:
        start = 0
    stream, resumed, total = _open(url, start)
    if resumed:
        log.info("resuming %s at %.1f MB", part.name, start / 1e6)
    else:
        start = 0
    progress = _Progress(part.name.removesuffix(".part"), start, size or total)
    done = start
    with stream, open(part, "ab" if resumed else "wb") as out:
        for block in iter(lambda: stream.read(CHUNK), b""):
            out.write(block)
            done += len(block)
            progress.update(done)
    progress.update(done, final=True)
    if total is not None and done < total:
        raise URLError(f"connection closed after {done} of {total} bytes")


def fetch(urls: list[str], dest: str | Path, md5: str | None = None, sha256: str | None = None,
          size: int | None = None) -> Path:
    """Download `dest` from the first of `urls` that works and passes the checksum.

    A partial download lives in `dest.part` and is resumed by the next call (with
    a Range request; a server that ignores it is restarted from byte 0). A
    checksum mismatch deletes the partial file and tries the next URL.
    """
    dest = Path(dest)
    if not urls:
        raise DataPrepError(f"no URL to download {dest.name} from")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures = []
    for url in urls:
        log.info("downloading %s from %s", dest.name, url)
        try:
            _download(url, part, size)
            verify(part, md5, sha256, size)
        except ChecksumError as err:
            part.unlink(missing_ok=True)
            failures.append(f"{url}: {err} (the download was deleted)")
        except (URLError, OSError, ValueError, http.client.HTTPException) as err:  # keep the partial file for resuming
            failures.append(f"{url}: {type(err).__name__}: {err}")
        else:
            os.replace(part, dest)
            return dest
        log.warning("%s", failures[-1])
    raise DataPrepError(
        f"could not download {dest.name}; tried {len(urls)} URL(s):\n  " + "\n  ".join(failures)
        + f"\nRun again to retry (a partial download is resumed), or download the file by hand to {dest}"
        + (f" and check its checksum ({'sha256 ' + sha256 if sha256 else 'md5 ' + md5})" if sha256 or md5 else "")
    )


# ---------------------------------------------------------------- extraction


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _check_member(name: str, dest: Path, archive: Path) -> None:
    target = (dest / name).resolve()
    if os.path.isabs(name) or not target.is_relative_to(dest.resolve()):
        raise DataPrepError(f"refusing to extract {archive}: member {name!r} would be written outside {dest}")


def _require_extraction_filters() -> None:
    """tarfile's extraction filters (PEP 706) exist from Python 3.10.12, 3.11.4 and 3.12 on."""
    if not hasattr(tarfile, "data_filter"):
        import sys

        raise DataPrepError(
            f"Python {sys.version.split()[0]} lacks tarfile's extraction filters (PEP 706), which unpack archives "
            f"safely: use Python >=3.10.12, >=3.11.4 or >=3.12 (pyproject.toml requires-python)")


def extract(archive: str | Path, dest: str | Path) -> Path:
    """Unpack a .tar/.tar.gz/.tgz/.zip into `dest` once, refusing members that would land outside it.

    `dest/.<archive>.extracting` marks an extraction under way and `.extracted` a finished one (a
    finished one is not repeated). Raises DataPrepError naming the archive when it is unreadable or
    a member escapes `dest`, and when Python lacks tarfile's extraction filters (PEP 706).
    """
    archive, dest = Path(archive), Path(dest)
    marker = dest / f".{archive.name}.extracted"
    if marker.exists():
        return dest
    _require_extraction_filters()
    dest.mkdir(parents=True, exist_ok=True)
    started = extracting_marker(archive, dest)
    started.write_text(f"{archive.name}\n")
    log.info("extracting %s into %s", archive.name, dest)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _check_member(name, dest, archive)
                zf.extractall(dest)
        else:
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for member in members:
                    _check_member(member.name, dest, archive)
                    if member.issym() or member.islnk():
                        _check_member(os.path.join(os.path.dirname(member.name), member.linkname), dest, archive)
                tf.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as err:
        raise DataPrepError(f"{archive} is not a readable archive ({err}); delete it and run again to download it anew") from None
    marker.write_text(f"{archive.name}\n")
    started.unlink(missing_ok=True)
    return dest


def extracting_marker(archive: Path, dest: Path) -> Path:
    return dest / f".{Path(archive).name}.extracting"


# ---------------------------------------------------------------- a dataset's download block


def expand_shards(files: list[dict]) -> list[dict]:
    """A file entry with `shards: N` stands for N files; `{shard}` in its fields is the shard number."""
    out = []
    for entry in files:
        if not entry.get("shards"):
            out.append(entry)
            continue
        for i in range(entry["shards"]):
            out.append({k: _format(v, i) for k, v in entry.items() if k != "shards"})
    return out


def _format(value, shard: int):
    if isinstance(value, str):
        return value.format(shard=shard)
    if isinstance(value, list):
        return [_format(v, shard) for v in value]
    return value


def _md5_from_url(url: str) -> str:
    """The checksum in a published md5sum file ('<md5>  <file name>')."""
    try:
        stream, _, _ = _open(url, 0)
        with stream:
            return stream.read().decode().split()[0]
    except (URLError, OSError, ValueError, IndexError) as err:
        raise DataPrepError(f"could not read the checksum file {url} ({err}); run again to retry") from None


def _verified(path: Path, entry: dict) -> None:
    """Check a file already on disk once; a marker remembers a passed check."""
    marker = path.with_name(f".{path.name}.verified")
    if path.is_dir() or (marker.exists() and marker.read_text() == str(path.stat().st_size)):
        return
    verify(path, entry.get("md5"), entry.get("sha256"), None)
    marker.write_text(str(path.stat().st_size))


def provided(raw: Path, provides: str | None) -> Path | None:
    """The first existing path of a download entry's `provides`: one or more paths or glob patterns under
    the raw directory, separated by ' | ' (e.g. 'train/n01440764 | train/n01440764.tar'); None if none exists."""
    for pattern in (p.strip() for p in (provides or "").split("|")):
        if pattern:
            hit = next(iter(sorted(raw.glob(pattern))), None) if any(ch in pattern for ch in "*?[") else raw / pattern
            if hit is not None and hit.exists():
                return hit
    return None


def manual_message(dataset: dict, raw: Path, missing: list[dict]) -> str:
    listing = "\n".join(
        f"  - {raw / e['name']}" + "".join(f" ({k} {e[k]})" for k in ("md5", "sha256") if e.get(k))
        + (f", or what it unpacks to: {' or '.join(str(raw / p.strip()) for p in e['provides'].split('|'))}"
           if e.get("provides") else "")
        for e in missing
    )
    how = (dataset.get("download") or {}).get("manual") or "download them from the dataset's website"
    return (f"dataset {dataset['name']!r} cannot be downloaded automatically. Put these file(s) under the raw "
            f"directory {raw} (config key raw_dir):\n{listing}\nWhere to get them: {how.strip()}\n"
            f"Then run data_prep again.")


def obtain(dataset: dict, raw: str | Path) -> Path:
    """Download (or check the manual copies of) and extract every file of the dataset's download block.

    A file whose `provides` already exists under `raw` (unpacked earlier, or supplied unpacked by the
    user, e.g. ImageNet in torchvision's train/<wnid>/ layout) is neither asked for, checked nor
    unpacked, unless an extraction of it was interrupted (then it is unpacked again). Raises
    DataPrepError naming the dataset, the file and what to do: a checksum mismatch, a failed
    download, or (manual datasets) every missing file with where to get it.
    """
    raw = Path(raw)
    block = dataset.get("download") or {}
    files = expand_shards(block.get("files") or [])
    manual = bool(block.get("manual"))
    missing = []
    for entry in files:
        path = raw / entry["name"]
        dest = raw / (entry.get("extract_to") or "")
        have = provided(raw, entry.get("provides"))
        if have is not None and not extracting_marker(path, dest).exists():
            log.info("%s: %s is there; %s is not needed", dataset["name"], have, entry["name"])
            continue
        try:
            if not path.exists():
                if manual or not entry.get("urls"):
                    missing.append(entry)
                    continue
                md5 = entry.get("md5") or (_md5_from_url(entry["md5_url"]) if entry.get("md5_url") else None)
                fetch(entry["urls"], path, md5=md5, sha256=entry.get("sha256"), size=entry.get("size"))
                if entry.get("md5") or entry.get("sha256"):
                    path.with_name(f".{path.name}.verified").write_text(str(path.stat().st_size))
            else:
                _verified(path, entry)
            if (is_archive(path) if entry.get("extract") is None else entry["extract"]) and path.is_file():
                extract(path, dest)
        except ChecksumError as err:
            raise DataPrepError(
                f"dataset {dataset['name']!r}: {err}. The file at {path} is corrupt or a different version: "
                f"delete it and run again{' to download it anew' if not manual else ', after fetching it again by hand'}"
            ) from None
        except DataPrepError as err:
            raise DataPrepError(f"dataset {dataset['name']!r}: {err}") from None
    if missing:
        raise DataPrepError(manual_message(dataset, raw, missing))
    return raw
