"""Where files live: a local path or an fsspec URL (``s3://``, ``gs://``, ``hf://``, ``file://``,
``memory://``, ``simplecache::s3://…`` chains), through one small set of functions.

Every command that reads or writes a file goes through here, so a local path and a URL are one
code path (as img2dataset's writer opens everything with ``fsspec.core.url_to_fs``). A plain
path never imports fsspec and behaves exactly as before: atomic local writes, the same errors.

Credentials and endpoints come from the usual places: the provider's environment variables
(``AWS_ACCESS_KEY_ID`` …), fsspec's ``FSSPEC_<PROTOCOL>_<OPTION>`` variables (e.g.
``FSSPEC_S3_ENDPOINT_URL``, read at each call, not only at import), or ``--storage-options JSON``
(:func:`set_storage_options`). They are held in memory only: no function here writes them, and
:func:`redact` removes them from every message. A failure becomes a :class:`StorageError` that
names the URL (never a credential), so the CLI prints one line, not a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .atomic import atomic_write_bytes

# what to install for a protocol whose fsspec implementation is missing
_EXTRAS = {"s3": "'redegkit[s3]'", "s3a": "'redegkit[s3]'", "gs": "'redegkit[gcs]'", "gcs": "'redegkit[gcs]'",
           "hf": "huggingface_hub"}  # fmt: skip
_LOCAL = {"file", "local"}
_SECRET_KEYS = re.compile(r"(key|secret|token|password|credential|session)", re.I)

_OPTIONS: dict[str, dict[str, Any]] = {}  # per protocol, from --storage-options


class StorageError(OSError):
    """Reading or writing a URL failed; the message names the URL and holds no credential."""


def set_storage_options(options: str | dict[str, Any] | None) -> None:
    """Options for remote file systems, as fsspec's configuration: ``{"s3": {"endpoint_url": …}}``
    (per protocol), or one flat dict for every remote protocol. ``options``: a dict, a JSON text,
    or None (clears). Raises ValueError on JSON that is not an object."""
    _OPTIONS.clear()
    if options is None or options == "":
        return
    if isinstance(options, str):
        try:
            options = json.loads(options)
        except json.JSONDecodeError as e:
            raise ValueError(f"--storage-options: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(options, dict):
        raise ValueError('--storage-options: expected a JSON object, e.g. \'{"s3": {"endpoint_url": …}}\'')
    if options and all(isinstance(v, dict) for v in options.values()):
        _OPTIONS.update({k: dict(v) for k, v in options.items()})
    else:
        _OPTIONS["*"] = dict(options)


def storage_options() -> dict[str, dict[str, Any]]:
    """The options in force (for handing to another process, e.g. a Ray task): the
    ``--storage-options`` plus fsspec's ``FSSPEC_*`` environment variables of this process."""
    import fsspec.config

    env: dict[str, dict[str, Any]] = {}
    fsspec.config.set_conf_env(env)
    out = {k: dict(v) for k, v in env.items()}
    for proto, opts in _OPTIONS.items():
        out.setdefault(proto, {}).update(opts)
    return out


def use_storage_options(options: dict[str, dict[str, Any]]) -> None:
    """Take ``options`` (from :func:`storage_options` of another process) as this process's."""
    _OPTIONS.clear()
    _OPTIONS.update({k: dict(v) for k, v in options.items()})


def protocol(url: str | os.PathLike) -> str:
    """The outermost protocol of ``url`` (``"s3"``; the target of a ``simplecache::`` chain);
    ``""`` for a plain path."""
    s = str(url)
    last = s.split("::")[-1] if "::" in s else s
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", last)
    return m.group(1).lower() if m else ""


def is_remote(url: str | os.PathLike) -> bool:
    """A URL that is not on the local file system (``file://`` and plain paths are local)."""
    return isinstance(url, str) and ("::" in url or protocol(url) not in _LOCAL | {""})


def local_path(url: str | os.PathLike) -> Path:
    """The local path of a plain path or ``file://`` URL."""
    s = str(url)
    return Path(s[len("file://") :] if s.startswith("file://") else s).expanduser()


def redact(text: str) -> str:
    """``text`` without any credential: user info in URLs and every secret-looking option value."""
    text = re.sub(r"(://)[^/@\s]+@", r"\1***@", text)
    for opts in [*_OPTIONS.values()]:
        for k, v in opts.items():
            if isinstance(v, str) and len(v) >= 4 and _SECRET_KEYS.search(k):
                text = text.replace(v, "***")
    for k, v in os.environ.items():
        if len(v) >= 8 and _SECRET_KEYS.search(k) and ("SECRET" in k or "TOKEN" in k or "KEY" in k):
            text = text.replace(v, "***")
    return text


def shown(url: str | os.PathLike) -> str:
    """How a path or URL is written into a report, a record or a sample's JSON: a path as it is, a
    URL without credentials (:func:`redact`)."""
    return redact(url) if is_remote(url) else str(url)  # type: ignore[arg-type]  # a str when remote


def _options_for(url: str) -> dict[str, Any]:
    proto = protocol(url)
    opts = storage_options()
    return {**opts.get("*", {}), **opts.get(proto, {})} if "::" not in url else {proto: opts.get(proto, {})}


def describe_error(url: str, e: BaseException) -> str:
    """One line that says what went wrong with ``url`` (and what to do), without a credential."""
    proto, where = protocol(url), redact(str(url))
    name = type(e).__name__
    if isinstance(e, ImportError) or "install" in str(e).lower() and proto in _EXTRAS:
        extra = _EXTRAS.get(proto)
        hint = f"pip install {extra}" if extra else "install its fsspec implementation"
        return f"{where}: no file system for {proto}:// ({hint})"
    if name in ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError"):
        return f"{where}: no credentials found ({name}); set them in the environment or --storage-options"
    if isinstance(e, PermissionError) or "AccessDenied" in str(e) or "InvalidAccessKeyId" in str(e):
        return f"{where}: access denied (check the credentials and their permissions)"
    if isinstance(e, FileNotFoundError) or "NoSuchBucket" in str(e):
        return f"{where}: not found"
    if name in ("EndpointConnectionError", "ClientConnectorError", "ConnectError", "ConnectionError"):
        return f"{where}: cannot reach the storage endpoint ({redact(str(e))[:200]})"
    if isinstance(e, ValueError) and "protocol" in str(e).lower():
        return f"{where}: unknown protocol {proto!r}"
    return f"{where}: {name}: {redact(str(e))[:300]}"


@contextlib.contextmanager
def errors(url: str | os.PathLike) -> Iterator[None]:
    """Turn what a remote file system raises into a :class:`StorageError` that names ``url``."""
    try:
        yield
    except StorageError:
        raise
    except Exception as e:
        if not is_remote(url):
            raise
        raise StorageError(describe_error(str(url), e)) from None


def url_to_fs(url: str) -> tuple[Any, str]:
    """``(fsspec file system, path in it)`` for a URL, with the options in force."""
    import fsspec

    with errors(url):
        fs, path = fsspec.core.url_to_fs(url, **_options_for(url))
    return fs, path


def join(base: str | os.PathLike, *names: str) -> str:
    """``base/name`` for a URL or a path (a URL keeps its ``//``)."""
    if is_remote(base):
        return "/".join([str(base).rstrip("/"), *names])
    return str(Path(base).joinpath(*names))


def basename(url: str | os.PathLike) -> str:
    return str(url).rstrip("/").rsplit("/", 1)[-1]


def read_bytes(url: str | os.PathLike) -> bytes:
    """The whole file (raises OSError; a remote failure is a :class:`StorageError`)."""
    if not is_remote(url):
        return local_path(url).read_bytes()
    fs, path = url_to_fs(str(url))
    with errors(url):
        return fs.cat_file(path)


def read_text(url: str | os.PathLike) -> str:
    return read_bytes(url).decode("utf-8")


def write_bytes(url: str | os.PathLike, data: bytes) -> str:
    """Write a whole file: atomically on disk (temporary file, rename); one PUT on object storage
    (an object appears complete or not at all)."""
    if not is_remote(url):
        return str(atomic_write_bytes(local_path(url), data))
    fs, path = url_to_fs(str(url))
    with errors(url):
        fs.pipe_file(path, data)
        fs.invalidate_cache(path)
    return str(url)


def write_text(url: str | os.PathLike, text: str) -> str:
    return write_bytes(url, text.encode("utf-8"))


def put_file(local: str | os.PathLike, url: str) -> None:
    """Upload a finished local file to ``url`` (a multipart upload becomes visible only when it
    completes)."""
    fs, path = url_to_fs(url)
    with errors(url):
        fs.put_file(str(local), path)
        fs.invalidate_cache(path)


def exists(url: str | os.PathLike) -> bool:
    if not is_remote(url):
        return local_path(url).exists()
    fs, path = url_to_fs(str(url))
    with errors(url):
        return bool(fs.exists(path))


def is_dir(url: str | os.PathLike) -> bool:
    if not is_remote(url):
        return local_path(url).is_dir()
    fs, path = url_to_fs(str(url))
    with errors(url):
        return bool(fs.isdir(path))


def size(url: str | os.PathLike) -> int:
    if not is_remote(url):
        return local_path(url).stat().st_size
    fs, path = url_to_fs(str(url))
    with errors(url):
        return int(fs.size(path))


def remove(url: str | os.PathLike) -> None:
    """Delete a file if it exists."""
    if not is_remote(url):
        local_path(url).unlink(missing_ok=True)
        return
    fs, path = url_to_fs(str(url))
    with errors(url), contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)
        fs.invalidate_cache(path)


def list_files(url: str | os.PathLike) -> dict[str, int]:
    """The files directly in folder ``url``: name -> size (one list call per 1,000 keys on S3);
    an absent folder has none."""
    if not is_remote(url):
        p = local_path(url)
        return {q.name: q.stat().st_size for q in p.iterdir() if q.is_file()} if p.is_dir() else {}
    fs, path = url_to_fs(str(url))
    with errors(url):
        try:
            entries = fs.ls(path, detail=True, refresh=True)
        except FileNotFoundError:
            return {}
    return {basename(e["name"]): int(e.get("size") or 0) for e in entries if e.get("type") == "file"}


def make_dirs(url: str | os.PathLike) -> None:
    """Create a local folder (object stores have no folders: a no-op there)."""
    if not is_remote(url):
        local_path(url).mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def open_input(url: str | os.PathLike, block_size: int = 1 << 23) -> Iterator[Any]:
    """A binary file object to read ``url`` from (remote: read ahead in ``block_size`` blocks)."""
    if not is_remote(url):
        with open(local_path(url), "rb") as f:
            yield f
        return
    fs, path = url_to_fs(str(url))
    with errors(url), fs.open(path, "rb", block_size=block_size, cache_type="readahead") as f:
        yield f
