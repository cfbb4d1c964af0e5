"""Open an HTML file in headless Chromium and check it the way a person would look at it.

    python tools/browser_check.py report.html [--screenshot shot.png] [--width 1280 --height 900]

prints one JSON object: ``images`` (how many ``<img>``), ``broken_images`` (those with
``naturalWidth == 0`` after load, by ``alt``), ``console_errors`` (console errors, uncaught
exceptions and failed loads, network ones included), ``load_ms`` (navigation start to the load
event, from the page's own performance timing), ``screenshot_std`` (grey-level standard deviation
of the screenshot: about 0 for a blank page) and ``ok``. Exit code 0 when ``ok``.

It drives Chromium through the DevTools protocol over a WebSocket, with the standard library only
(a minimal RFC 6455 client: masked text frames out, unmasked frames in), so the tests need neither
Playwright nor a browser download: Debian's ``chromium`` package is enough. The browser runs with
a fresh profile folder, no sandbox (CI containers run as root), no GPU and no background traffic.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)


def find_chromium() -> str | None:
    """The Chromium executable: ``$CHROMIUM``, /usr/bin/chromium, or one on PATH; None if none."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).is_file():
        return env
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    for name in CHROMIUM_NAMES:
        p = shutil.which(name)
        if p:
            return p
    return None


class WebSocket:
    """Just enough of a WebSocket client for the DevTools protocol (text messages, no extensions)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        assert url.startswith("ws://"), url
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port or 80)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (
            f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            head += chunk
        status, _, rest = head.partition(b"\r\n\r\n")
        if b" 101 " not in status.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {status[:200]!r}")
        self.buf = rest

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text: str) -> None:
        data = text.encode()
        n = len(data)
        head = bytes([0x81])  # FIN + text
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + masked)

    def recv(self) -> str:
        parts: list[bytes] = []
        while True:
            b0, b1 = self._read(2)
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if op == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if op == 0x9:  # ping -> pong (masked, as a client must)
                m = os.urandom(4)
                self.sock.sendall(
                    bytes([0x8A, 0x80 | len(payload)])
                    + m
                    + bytes(b ^ m[i % 4] for i, b in enumerate(payload))
                )
                continue
            if op in (0x1, 0x2, 0x0):
                parts.append(payload)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class DevTools:
    """A DevTools session on one page target: ``call(method, **params)``; events are collected."""

    def __init__(self, ws_url: str) -> None:
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(method)

    def wait_event(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        for e in self.events:
            if e["method"] == name:
                return e
        end = time.monotonic() + timeout
        self.ws.sock.settimeout(timeout)
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == name:
                    return msg
        raise TimeoutError(name)


@dataclass
class BrowserCheck:
    url: str
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    load_ms: float = -1.0
    wall_ms: float = -1.0
    screenshot_std: float = 0.0
    page_height: int = 0
    ok: bool = False


_IMAGES_JS = """JSON.stringify({
  images: document.images.length,
  broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 60)),
  load_ms: performance.getEntriesByType('navigation')[0].loadEventEnd,
  height: document.documentElement.scrollHeight
})"""


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        m, p = e["method"], e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append(
                "console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            )
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            ent = p["entry"]
            out.append(f"log ({ent.get('source')}): {ent.get('text')} {ent.get('url', '')}".strip())
        elif m == "Network.loadingFailed":
            out.append(f"network: {p.get('errorText')} ({p.get('type')})")
    return out


def _png_std(png: bytes) -> float:
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    return float(img.std()) if img is not None else 0.0


def check_page(
    html: str | Path,
    *,
    screenshot: str | Path | None = None,
    width: int = 1280,
    height: int = 900,
    max_height: int | None = None,
    chromium: str | None = None,
    timeout: float = 60.0,
) -> BrowserCheck:
    """Load ``html`` (a file) in a fresh headless Chromium and check it (see the module doc).
    ``screenshot``: also write the viewport's screenshot there (PNG); with ``max_height``, the
    page from the top down to that many pixels instead of the first ``height``."""
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium, or set $CHROMIUM)")
    url = Path(html).resolve().as_uri()
    res = BrowserCheck(url)
    profile = tempfile.mkdtemp(prefix="redeg-chromium-")
    proc = subprocess.Popen(
        [
            exe,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        end = time.monotonic() + timeout
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if proc.poll() is not None:
                raise RuntimeError(f"chromium exited with code {proc.returncode} before DevTools was up")
            if time.monotonic() > end:
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = port_file.read_text().splitlines()[0].strip()
        targets: list[dict[str, Any]] = []
        while not targets:
            from urllib.request import urlopen

            with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:  # noqa: S310 (loopback)
                targets = [t for t in json.load(r) if t.get("type") == "page"]
            if not targets:
                time.sleep(0.05)
        dt = DevTools(targets[0]["webSocketDebuggerUrl"])
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                dt.call(f"{domain}.enable")
            dt.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            dt.events.clear()
            t0 = time.monotonic()
            dt.call("Page.navigate", url=url)
            dt.wait_event("Page.loadEventFired", timeout)
            res.wall_ms = round((time.monotonic() - t0) * 1000, 1)
            info = json.loads(
                dt.call("Runtime.evaluate", expression=_IMAGES_JS, returnByValue=True)["result"]["value"]
            )
            res.images, res.broken_images = int(info["images"]), list(info["broken"])
            res.load_ms, res.page_height = round(float(info["load_ms"]), 1), int(info["height"])
            if max_height and res.page_height > height:  # a taller shot: the page down to max_height
                dt.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=min(res.page_height, max_height),
                    deviceScaleFactor=1,
                    mobile=False,
                )
            shot = base64.b64decode(dt.call("Page.captureScreenshot", format="png")["data"])
            res.screenshot_std = round(_png_std(shot), 2)
            if screenshot is not None:
                Path(screenshot).write_bytes(shot)
            time.sleep(0.1)  # late console messages
            dt.call("Runtime.evaluate", expression="1")
            res.console_errors = _errors(dt.events)
        finally:
            dt.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)
    res.ok = res.images > 0 and not res.broken_images and not res.console_errors and res.screenshot_std > 5
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("--screenshot", type=Path)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--max-height", type=int, help="screenshot the page down to this height")
    a = ap.parse_args(argv)
    res = check_page(a.html, screenshot=a.screenshot, width=a.width, height=a.height, max_height=a.max_height)
    print(json.dumps(asdict(res), indent=1))
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
