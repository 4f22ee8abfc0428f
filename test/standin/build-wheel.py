#!/usr/bin/env python3
"""Build the vllm-standin wheel (a TEST STAND-IN for vLLM, not vLLM).

    python3 test/standin/build-wheel.py --version 0.11.0 --out DIR

writes DIR/vllm_standin-0.11.0-py3-none-any.whl: a real wheel (PEP 427 / 491)
with METADATA, WHEEL, entry_points.txt (console script `vllm`), top_level.txt
and a RECORD carrying sha256 hashes, so `uv pip install --find-links DIR
vllm-standin==0.11.0` installs it exactly as vLLM would be installed. The
version is the stand-in's own version: it decides which removed vLLM flags it
refuses (see vllm_standin/cli.py). Reproducible: fixed timestamps and order,
so the same version gives the same bytes. Prints the wheel's path.
Standard library only.
"""

import argparse
import base64
import hashlib
import os
import re
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = "vllm_standin"
DIST = "vllm-standin"
EPOCH = (2020, 1, 1, 0, 0, 0)
# What vLLM 0.15.0 installs; `hf download` of it works against test/standin/hub.ts.
HUB_REQUIREMENT = "huggingface_hub==0.36.2"


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build(version, out):
    if not re.match(r"^[0-9]+(\.[0-9]+)*([a-z0-9.+-]*)$", version):
        raise SystemExit("build-wheel: bad version %r" % version)
    distinfo = "%s-%s.dist-info" % (PKG, version)
    files = []
    src = os.path.join(HERE, PKG)
    for name in sorted(os.listdir(src)):
        if name.endswith(".py"):
            with open(os.path.join(src, name), "rb") as f:
                files.append(("%s/%s" % (PKG, name), f.read()))
    metadata = "\n".join([
        "Metadata-Version: 2.1",
        "Name: %s" % DIST,
        "Version: %s" % version,
        "Summary: TEST STAND-IN for vLLM's OpenAI-compatible server (not vLLM); used by pulumi-vllm's host tests",
        "License: Apache-2.0",
        "Requires-Python: >=3.8",
        # Real vLLM brings huggingface_hub (the weights step runs its `hf`); the stand-in needs
        # none of it, so it is an extra: `vllm-standin[hub]==X` installs it from the index.
        "Provides-Extra: hub",
        "Requires-Dist: %s; extra == \"hub\"" % HUB_REQUIREMENT,
        "",
        "vllm-standin is not vLLM. It speaks vLLM's HTTP endpoints without a model so that",
        "pulumi-vllm can test its systemd unit and readiness gate on machines without a GPU.",
        "",
    ]).encode()
    wheel = "\n".join([
        "Wheel-Version: 1.0",
        "Generator: pulumi-vllm test/standin/build-wheel.py",
        "Root-Is-Purelib: true",
        "Tag: py3-none-any",
        "",
    ]).encode()
    entry_points = b"[console_scripts]\nvllm = vllm_standin.cli:main\n"
    files += [
        ("%s/METADATA" % distinfo, metadata),
        ("%s/WHEEL" % distinfo, wheel),
        ("%s/entry_points.txt" % distinfo, entry_points),
        ("%s/top_level.txt" % distinfo, (PKG + "\n").encode()),
    ]
    record_lines = ["%s,%s,%d" % (name, record_hash(data), len(data)) for name, data in files]
    record_lines.append("%s/RECORD,," % distinfo)
    files.append(("%s/RECORD" % distinfo, ("\n".join(record_lines) + "\n").encode()))

    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "%s-%s-py3-none-any.whl" % (PKG, version))
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            info = zipfile.ZipInfo(name, EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    os.replace(tmp, path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--version", required=True, help="version of the stand-in wheel, e.g. 0.11.0")
    ap.add_argument("--out", required=True, help="directory to write the wheel into")
    a = ap.parse_args()
    print(build(a.version, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
