"""The files and the server behind the dataset fakes (data_prep.fakes): seeded images, reproducible
tar/zip archives, .mat and record files, checksums, and an HTTP server with Range support as the
real hosts have (resumed downloads)."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def file_seed(path: Path | str) -> int:
    return int.from_bytes(hashlib.sha256(str(path).encode()).digest()[:8], "little")


def image(path: Path, size=(14, 10), fmt=None, label: int | None = None, seed: int | None = None) -> Path:
    """A random RGB image at `path` (format from the suffix, or `fmt`). With `label`, a colour halfway
    between the class's and the image's own, plus noise: learnable, yet classes overlap, so that a
    probe set's kNN or logistic accuracy is not 100% for every expert (an undefined correlation); pixels
    seeded by `seed` (default: the path's name and parent)."""
    rng = np.random.default_rng(seed if seed is not None else file_seed(Path(path).parent.name + "/" + Path(path).name))
    noise = rng.integers(0, 256, (size[1], size[0], 3))
    if label is not None:
        colour = 0.5 * np.random.default_rng(1000 + label).integers(0, 256, 3) + 0.5 * rng.integers(0, 256, 3)
        noise = 0.6 * colour + 0.4 * noise
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise.astype(np.uint8)).save(path, format=fmt)
    return path


def _tarinfo(tf: tarfile.TarFile, path: Path, arcname: str) -> tarfile.TarInfo:
    info = tf.gettarinfo(str(path), arcname=arcname)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""  # the same bytes on every build
    return info


def make_tar(archive: Path, root: Path) -> Path:
    """A tar (gzip-compressed for .gz/.tgz) of everything under `root`, members relative to it; reproducible."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                with p.open("rb") as f:
                    tf.addfile(_tarinfo(tf, p, p.relative_to(root).as_posix()), f)
    data = raw.getvalue()
    if archive.name.endswith(("gz", "tgz")):
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
            gz.write(data)
        data = out.getvalue()
    archive.write_bytes(data)
    return archive


def make_zip(archive: Path, root: Path) -> Path:
    """A zip of everything under `root`, members relative to it; reproducible (fixed dates)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.writestr(zipfile.ZipInfo(p.relative_to(root).as_posix(), (1980, 1, 1, 0, 0, 0)), p.read_bytes())
    return archive


def digest(path: Path, algorithm: str) -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def savemat(path: Path, **arrays) -> Path:
    from scipy.io import savemat as _savemat

    path.parent.mkdir(parents=True, exist_ok=True)
    _savemat(path, arrays)
    return path


def records(**columns) -> np.ndarray:
    """A MATLAB struct array (numpy structured array of objects)."""
    n = len(next(iter(columns.values())))
    out = np.zeros(n, dtype=[(k, "O") for k in columns])
    for k, values in columns.items():
        for i, v in enumerate(values):
            out[i][k] = v
    return out


def use_checksums(entry: dict, path: Path) -> None:
    """Swap the fake file's real checksum (of the kind the config uses) and size into a download entry."""
    for algorithm in ("md5", "sha256"):
        if entry.get(algorithm):
            entry[algorithm] = digest(path, algorithm)
    if entry.get("size"):
        entry["size"] = path.stat().st_size


def load_config(name: str, configs: Path = CONFIGS) -> dict:
    """A real dataset config as a plain dict, as written (configs/dataset/<name>.yaml)."""
    return yaml.safe_load((configs / "dataset" / f"{name}.yaml").read_text())


# ---------------------------------------------------------------- the HTTP server


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support (SimpleHTTPRequestHandler has none); records the ranges asked for."""

    ranges: list = []

    def send_head(self):
        header = self.headers.get("Range")
        if not header:
            return super().send_head()
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "File not found")
            return None
        data = path.read_bytes()
        start = int(header.removeprefix("bytes=").split("-")[0])
        type(self).ranges.append(start)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        return io.BytesIO(data[start:])

    def log_message(self, *args):
        pass


class Server:
    """`folder` over HTTP on 127.0.0.1 (Range requests honoured) in a daemon thread; a context manager."""

    def __init__(self, folder: Path, port: int = 0, handler=RangeHandler):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), partial(handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
