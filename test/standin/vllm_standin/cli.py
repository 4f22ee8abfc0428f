"""`vllm` console script of the vllm-standin test package (NOT vLLM).

    vllm serve MODEL [--host H] [--port P] [--served-model-name N ...] [...]
    vllm --version

Environment:
  VLLM_API_KEY               when set, /v1/* require `Authorization: Bearer <key>`
                             (like vLLM; /health and /metrics stay open)
  VLLM_STANDIN_RECORD        where argv/environment, the identity (uid, groups,
                             capabilities) and the write probes are recorded as
                             JSON, mode 0600 (default $HOME/vllm-standin/record.json
                             when not root, else /var/lib/vllm-standin/record.json)
  VLLM_STANDIN_WRITE_PROBES  comma-separated directories to try writing in, beyond
                             /etc, /opt, /usr, /var/lib, the venv, HOME, HF_HOME...
  VLLM_STANDIN_START_DELAY   seconds of simulated loading before the port is
                             bound (default 0); progress is logged meanwhile
  VLLM_STANDIN_SHARDS        number of checkpoint shards to "load" (default 4)
  VLLM_STANDIN_TQDM=1        draw the shard progress like vLLM's tqdm bar: \r
                             redraws, one newline at the end (journald then
                             keeps the whole bar in one line, flushed at its end)
  VLLM_STANDIN_CRASH=1       crash (exit 1) after the simulated loading, like
                             `--standin-crash`
  VLLM_STANDIN_LEAK_ENV      comma-separated env names whose VALUES the crash
                             message prints (simulates a library echoing a
                             token) so tests can prove the readiness gate
                             redacts secrets from the journal tail
  VLLM_STANDIN_LONG_LINE=N   log one "Loading weights" line of N characters
                             at start (tests that a step relaying the journal
                             keeps its output lines bounded)
  VLLM_STANDIN_LENIENT=1     accept unknown flags (removed flags still refused)
  VLLM_STANDIN_VERSION       version when run from the source tree
  HF_HUB_OFFLINE=1           like vLLM offline: the model's files must already
                             be in the Hugging Face cache (HF_HUB_CACHE, else
                             HF_HOME/hub) at --revision (default main), or the
                             start fails the way vLLM's does; what was found is
                             recorded under "weights"
  VLLM_STANDIN_WEIGHTS_GIB   the startup figures it reports, in the log formats of
  VLLM_STANDIN_KV_GIB        its own version (memory_lines below; default 0):
  VLLM_STANDIN_KV_TOKENS     weights loaded, available KV memory, KV cache tokens,
  VLLM_STANDIN_GRAPH_GIB     CUDA graph memory; the concurrency is tokens / the
                             --max-model-len given (default 4096). With --nnodes,
                             a comma list gives each node rank its own weights, KV
                             memory and graph figures ("17.2,17.45": rank 0, rank 1)

Flags vLLM removed are refused, exit 2, the way vLLM's argparse does
("vllm: error: unrecognized arguments: --swap-space 4") when the stand-in's
own version (the wheel's version, see build-wheel.py) is at or past the
version that removed them.
"""

import argparse
import errno
import grp
import json
import os
import pwd
import re
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from vllm_standin import OWNED_BY, version

# Flags vLLM removed, and the first release without them, as read from each
# release's arg_utils.py (components/plan/data/vllm-flag-history.json; the
# unit test test/unit/standin-table.test.ts keeps the two in step). The
# second value says whether the flag takes a value.
REMOVED_FLAGS = {
    "--disable-log-requests": ((0, 17, 0), False),
    "--swap-space": ((0, 18, 0), True),
    "--max-seq-len-to-capture": ((0, 11, 0), True),
    "--num-scheduler-steps": ((0, 10, 1), True),
    "--use-v2-block-manager": ((0, 10, 0), False),
    "--speculative-model": ((0, 8, 3), True),
    "--guided-decoding-backend": ((0, 12, 0), True),
}

# (flag, aliases, takes_value) of `vllm serve` flags the stand-in knows.
VALUE_FLAGS = [
    ("--model", []), ("--config", []), ("--host", []), ("--port", []),
    ("--uvicorn-log-level", []), ("--api-key", []), ("--hf-token", []),
    ("--tokenizer", []), ("--tokenizer-mode", []), ("--revision", []),
    ("--code-revision", []), ("--tokenizer-revision", []), ("--dtype", []),
    ("--download-dir", []), ("--load-format", []), ("--config-format", []),
    ("--max-model-len", []), ("--tensor-parallel-size", ["-tp"]),
    ("--pipeline-parallel-size", ["-pp"]), ("--data-parallel-size", ["-dp"]),
    ("--data-parallel-size-local", []), ("--data-parallel-address", []),
    ("--data-parallel-rpc-port", []), ("--data-parallel-start-rank", []),
    ("--gpu-memory-utilization", []), ("--kv-cache-memory-bytes", []),
    ("--kv-cache-dtype", []), ("--quantization", ["-q"]), ("--max-num-seqs", []),
    ("--max-num-batched-tokens", []), ("--tool-call-parser", []),
    ("--reasoning-parser", []), ("--chat-template", []),
    ("--chat-template-content-format", []), ("--distributed-executor-backend", []),
    ("--safetensors-load-strategy", []), ("--seed", []), ("--block-size", []),
    ("--max-log-len", []), ("--generation-config", []), ("--allowed-origins", []),
    ("--root-path", []), ("--cpu-offload-gb", []),
    ("--max-parallel-loading-workers", []), ("--api-server-count", []),
    ("--compilation-config", ["-O"]), ("--speculative-config", []),
    ("--hf-overrides", []), ("--override-generation-config", []),
    ("--limit-mm-per-prompt", []), ("--mm-processor-kwargs", []),
    ("--max-cudagraph-capture-size", []), ("--nnodes", []), ("--node-rank", []),
    ("--master-addr", []), ("--master-port", []), ("--structured-outputs-config", []),
    ("--max-loras", []), ("--max-lora-rank", []), ("--task", []), ("--runner", []),
    ("--convert", []), ("--swap-space", []), ("--max-seq-len-to-capture", []),
    ("--num-scheduler-steps", []), ("--speculative-model", []),
    ("--guided-decoding-backend", []), ("--enable-log-outputs", []),
]
BOOL_FLAGS = [
    "--trust-remote-code", "--enforce-eager", "--enable-auto-tool-choice",
    "--enable-prefix-caching", "--enable-chunked-prefill", "--disable-log-stats",
    "--enable-log-requests", "--disable-custom-all-reduce", "--headless",
    "--enable-expert-parallel", "--async-scheduling", "--enable-lora",
    "--disable-frontend-multiprocessing", "--disable-uvicorn-access-log",
    "--enable-sleep-mode", "--skip-tokenizer-init", "--disable-log-requests",
    "--use-v2-block-manager",
]
NARGS_FLAGS = [("--served-model-name", "+"), ("--lora-modules", "+"), ("--middleware", "*")]


def _vtuple(v):
    out = []
    for part in v.split("+")[0].split("."):
        digits = "".join(c for c in part if c.isdigit())
        out.append(int(digits) if digits else 0)
    while len(out) < 3:
        out.append(0)
    return tuple(out[:3])


def log(level, where, msg, prefix=""):
    # vLLM's format: "INFO 11-24 05:01:02 [api_server.py:1234] message"; a worker process's
    # lines start with its name: "(Worker_PP1_TP0 pid=123) INFO ..."
    ts = time.strftime("%m-%d %H:%M:%S")
    sys.stderr.write("%s%s %s [%s] %s\n" % (prefix, level, ts, where, msg))
    sys.stderr.flush()


def build_parser(ver):
    removed_now = {f for f, (rv, _) in REMOVED_FLAGS.items() if _vtuple(ver) >= rv}
    parser = argparse.ArgumentParser(prog="vllm", allow_abbrev=False,
                                     description="vllm-standin %s: a test stand-in for vLLM (not vLLM)" % ver)
    parser.add_argument("--version", action="store_true")
    sub = parser.add_subparsers(dest="subparser")
    serve = sub.add_parser("serve", allow_abbrev=False,
                           help="start the stand-in OpenAI-compatible server")
    serve.add_argument("model_tag", nargs="?", default=None)
    for flag, aliases in VALUE_FLAGS:
        if flag in removed_now:
            continue
        serve.add_argument(flag, *aliases, default=None)
    for flag in BOOL_FLAGS:
        if flag in removed_now:
            continue
        dest = flag[2:].replace("-", "_")
        serve.add_argument(flag, dest=dest, action="store_true", default=None)
        if flag not in REMOVED_FLAGS:
            serve.add_argument("--no-" + flag[2:], dest=dest, action="store_false")
    for flag, nargs in NARGS_FLAGS:
        serve.add_argument(flag, nargs=nargs, default=None)
    serve.add_argument("--standin-crash", action="store_true",
                       help="stand-in only: exit 1 after the simulated loading")
    return parser, removed_now


def normalize(argv):
    # vLLM's FlexibleArgumentParser accepts --foo_bar for --foo-bar
    out = []
    for a in argv:
        if a.startswith("--") and "_" in a:
            name, eq, val = a.partition("=")
            a = name.replace("_", "-") + eq + val
        out.append(a)
    return out


def record_path():
    # Under the unit's sandbox only HOME and HF_HOME are writable: the record
    # goes to HOME when the service manager set one (a unit with User=).
    if os.environ.get("VLLM_STANDIN_RECORD"):
        return os.environ["VLLM_STANDIN_RECORD"]
    home = os.environ.get("HOME")
    if home and home != "/" and os.getuid() != 0:
        return os.path.join(home, "vllm-standin", "record.json")
    return "/var/lib/vllm-standin/record.json"


def write_probes():
    """Try to create (then remove) a file in each place vLLM might write: what
    the unit's sandbox lets through. {path: "ok" or the error's name}."""
    places = ["/etc", "/opt", "/usr", "/usr/local", "/var/lib", "/var/lib/pulumi-vllm", "/root", "/home",
              sys.prefix, os.path.join(sys.prefix, "bin"), "/tmp", "/var/tmp", "/dev/shm",
              os.environ.get("HOME") or "", os.environ.get("HF_HOME") or ""]
    places += [p for p in (os.environ.get("VLLM_STANDIN_WRITE_PROBES") or "").split(",")]
    out = {}
    for d in places:
        if not d or d in out:
            continue
        f = os.path.join(d, ".vllm-standin-probe-%d" % os.getpid())
        try:
            fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            os.unlink(f)
            out[d] = "ok"
        except OSError as e:
            out[d] = errno.errorcode.get(e.errno, str(e.errno))
    return out


def identity():
    status = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                status[k] = v.strip()
    except OSError:
        pass
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = None
    groups = []
    for g in os.getgroups():
        try:
            groups.append(grp.getgrgid(g).gr_name)
        except KeyError:
            groups.append(str(g))
    return {"uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid(), "user": user, "groups": sorted(groups),
            "capEff": status.get("CapEff"), "capBnd": status.get("CapBnd"), "noNewPrivs": status.get("NoNewPrivs")}


def cached_weights(args):
    """With HF_HUB_OFFLINE=1, the snapshot of the model in the Hugging Face cache
    (as huggingface_hub resolves it offline: refs/<revision> -> snapshots/<commit>),
    or an error string when it is not there. None when not offline or a local path."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("1", "true", "yes", "on"):
        return None
    model = args.model_tag or args.model
    if model.startswith("/"):
        return None
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface"), "hub")
    repo = os.path.join(hub, "models--" + model.replace("/", "--"))
    rev = getattr(args, "revision", None) or "main"
    commit = rev
    if not re.match(r"^[0-9a-f]{40}$", rev):
        try:
            with open(os.path.join(repo, "refs", rev)) as f:
                commit = f.read().strip()
        except OSError:
            return "no refs/%s of %s in %s" % (rev, model, hub)
    snap = os.path.join(repo, "snapshots", commit)
    if not os.path.isfile(os.path.join(snap, "config.json")):
        return "no config.json of %s at %s" % (model, snap)
    files = []
    for d, _, names in os.walk(snap):
        for n in names:
            p = os.path.join(d, n)
            files.append({"path": os.path.relpath(p, snap), "size": os.path.getsize(p)})
    return {"offline": True, "hubCache": hub, "snapshot": snap, "commit": commit, "files": sorted(files, key=lambda x: x["path"])}


def record(args, ver, workers=(), weights=None):
    path = record_path()
    data = {
        "identity": identity(),
        "writes": write_probes(),
        "weights": weights,
        "workers": list(workers),
        "standin": True,
        "version": ver,
        "argv": sys.argv,
        "env": dict(os.environ),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "uid": os.getuid(),
        "cwd": os.getcwd(),
        "time": time.time(),
        "parsed": {k: v for k, v in vars(args).items() if k != "api_key"},
    }
    # The record replaces its file (os.replace): never a device or anything else that is not a
    # regular file (VLLM_STANDIN_RECORD=/dev/null once replaced the machine's /dev/null).
    if os.path.lexists(path) and not os.path.isfile(path):
        log("WARNING", "standin", "VLLM_STANDIN_RECORD %s is not a regular file: no record written" % path)
        return
    d = os.path.dirname(path) or "."
    os.makedirs(d, mode=0o700, exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


class State:
    def __init__(self, args, ver):
        self.args = args
        self.version = ver
        self.model = args.model_tag or args.model
        self.served = list(args.served_model_name or [self.model])
        key = args.api_key or os.environ.get("VLLM_API_KEY") or ""
        self.api_keys = [key] if key else []
        self.auto_tool_choice = bool(args.enable_auto_tool_choice) and bool(args.tool_call_parser)
        self.max_model_len = int(args.max_model_len) if (args.max_model_len or "").isdigit() else 4096
        self.lock = threading.Lock()
        self.counters = {"requests": 0, "prompt_tokens": 0, "generation_tokens": 0}
        self.created = int(time.time())


def _args_for(schema):
    out = {}
    props = (schema or {}).get("properties") or {}
    for name in (schema or {}).get("required") or list(props)[:1]:
        p = props.get(name) or {}
        if p.get("enum"):
            out[name] = p["enum"][0]
            continue
        t = p.get("type", "string")
        out[name] = {"string": "standin", "number": 1, "integer": 1, "boolean": True,
                     "array": [], "object": {}}.get(t, "standin")
    return out


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        server_version = "vllm-standin"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            # uvicorn-like access log line
            sys.stderr.write('INFO:     %s:%s - "%s" %s\n' % (self.client_address[0], self.client_address[1],
                                                               self.requestline, a[1] if len(a) > 1 else ""))
            sys.stderr.flush()

        def _send(self, code, body, ctype="application/json"):
            data = body if isinstance(body, bytes) else (
                json.dumps(body, separators=(",", ":")).encode() if ctype == "application/json" else body.encode())
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code, message, etype):
            self._send(code, {"error": {"message": message, "type": etype, "param": None, "code": code}})

        def _authorized(self):
            if not self.path.startswith("/v1") or not state.api_keys:
                return True
            auth = self.headers.get("Authorization", "")
            if any(auth == "Bearer " + k for k in state.api_keys):
                return True
            self._send(401, {"error": "Unauthorized"})
            return False

        def _path(self):
            return self.path.split("?", 1)[0]

        def do_GET(self):
            if not self._authorized():
                return
            p = self._path()
            if p == "/health":
                self._send(200, b"", "application/json")
            elif p == "/ping":
                self._send(200, b"", "application/json")
            elif p == "/version":
                self._send(200, {"version": state.version, "standin": True})
            elif p == "/v1/models":
                self._send(200, {"object": "list", "data": [
                    {"id": n, "object": "model", "created": state.created, "owned_by": OWNED_BY,
                     "root": state.model, "parent": None, "max_model_len": state.max_model_len,
                     "permission": []} for n in state.served]})
            elif p == "/metrics":
                with state.lock:
                    c = dict(state.counters)
                lines = ["# vllm-standin: stand-in metrics, not vLLM"]
                for n in state.served:
                    lab = 'model_name="%s"' % n.replace('"', '\\"')
                    lines += [
                        "vllm:num_requests_running{%s} 0.0" % lab,
                        "vllm:num_requests_waiting{%s} 0.0" % lab,
                        "vllm:kv_cache_usage_perc{%s} 0.0" % lab,
                        "vllm:num_preemptions_total{%s} 0.0" % lab,
                        "vllm:prompt_tokens_total{%s} %d.0" % (lab, c["prompt_tokens"]),
                        "vllm:generation_tokens_total{%s} %d.0" % (lab, c["generation_tokens"]),
                        "vllm:request_success_total{%s} %d.0" % (lab, c["requests"]),
                    ]
                self._send(200, "\n".join(lines) + "\n", "text/plain; version=0.0.4")
            else:
                self._error(404, "Not Found", "NotFoundError")

        def do_POST(self):
            if not self._authorized():
                return
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            p = self._path()
            if p != "/v1/chat/completions":
                self._error(404, "Not Found", "NotFoundError")
                return
            try:
                req = json.loads(raw or b"{}")
            except ValueError:
                self._error(400, "invalid JSON body", "BadRequestError")
                return
            model = req.get("model") or state.served[0]
            if model not in state.served:
                self._error(404, "The model `%s` does not exist." % model, "NotFoundError")
                return
            msgs = req.get("messages") or []
            last = ""
            for m in msgs:
                if m.get("role") == "user":
                    c = m.get("content")
                    last = c if isinstance(c, str) else json.dumps(c)
            tools = req.get("tools") or []
            choice = req.get("tool_choice", "auto" if tools else "none")
            if tools and choice == "auto" and not state.auto_tool_choice:
                self._error(400, '"auto" tool choice requires --enable-auto-tool-choice and '
                                 '--tool-call-parser to be set', "BadRequestError")
                return
            message = {"role": "assistant", "content": None}
            finish = "stop"
            if tools and choice != "none":
                fn = tools[0].get("function") or {}
                if isinstance(choice, dict):
                    want = (choice.get("function") or {}).get("name")
                    for t in tools:
                        if (t.get("function") or {}).get("name") == want:
                            fn = t["function"]
                message["tool_calls"] = [{
                    "id": "chatcmpl-tool-" + uuid.uuid4().hex[:24], "type": "function",
                    "function": {"name": fn.get("name", "unknown"),
                                 "arguments": json.dumps(_args_for(fn.get("parameters")))}}]
                finish = "tool_calls"
            else:
                message["content"] = ("[vllm-standin] This is the pulumi-vllm test stand-in, not a model. "
                                      "You said: %s" % last)
            ptok = sum(len(str(m.get("content") or "").split()) for m in msgs)
            ctok = len((message["content"] or "x").split())
            with state.lock:
                state.counters["requests"] += 1
                state.counters["prompt_tokens"] += ptok
                state.counters["generation_tokens"] += ctok
            rid = "chatcmpl-standin-" + uuid.uuid4().hex[:16]
            now = int(time.time())
            if req.get("stream"):
                chunk = {"id": rid, "object": "chat.completion.chunk", "created": now, "model": model,
                         "choices": [{"index": 0, "delta": message, "finish_reason": finish}]}
                body = "data: %s\n\ndata: [DONE]\n\n" % json.dumps(chunk)
                self._send(200, body, "text/event-stream")
                return
            self._send(200, {
                "id": rid, "object": "chat.completion", "created": now, "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": {"prompt_tokens": ptok, "completion_tokens": ctok, "total_tokens": ptok + ctok}})

    return Handler


MAX_MODEL_LEN = [4096]


def figure(name, rank=0, kind=float):
    """A VLLM_STANDIN_* figure; a comma list gives one per node rank (rank 0 first, the last repeats)."""
    values = (os.environ.get(name) or "0").split(",")
    return kind(values[min(rank, len(values) - 1)] or 0)


def worker_prefix(rank, nnodes):
    """What vLLM puts before a worker's lines; one worker per node stands for the node's ranks."""
    return "(Worker_PP%d_TP0 pid=%d) " % (rank, os.getpid()) if nnodes > 1 else ""


def memory_lines(ver, load_secs, rank=0, nnodes=1):
    """vLLM's startup memory lines in the release's own format (logger calls read from the
    0.6.0, 0.11.0, 0.15.0 and 0.33.0 sources; components/plan/measured.ts lists them), with the
    figures from the VLLM_STANDIN_* knobs. Nothing is measured: the stand-in has no GPU.
    Every worker prints its weights and KV memory; the engine (node rank 0) the KV cache size
    and the concurrency: a headless node (rank > 0) prints only its worker's lines."""
    weights = figure("VLLM_STANDIN_WEIGHTS_GIB", rank)
    kv = figure("VLLM_STANDIN_KV_GIB", rank)
    tokens = figure("VLLM_STANDIN_KV_TOKENS", 0, int)
    graph = figure("VLLM_STANDIN_GRAPH_GIB", rank)
    engine = rank == 0
    p = worker_prefix(rank, nnodes)
    mml = MAX_MODEL_LEN[0]
    conc = tokens / mml if mml else 0.0
    v = _vtuple(ver)
    if v < (0, 8, 0):  # V0: worker/model_runner.py, executor/gpu_executor.py
        log("INFO", "model_runner.py:926", "Loading model weights took %.4f GB" % weights, p)
        if v >= (0, 6, 5):
            log("INFO", "worker.py:262", "model weights take %.2fGiB; non_torch_memory takes 0.00GiB; PyTorch activation peak "
                "memory takes 0.00GiB; the rest of the memory reserved for KV Cache is %.2fGiB." % (weights, kv), p)
        if engine:
            log("INFO", "gpu_executor.py:122", "# %s blocks: %d, # CPU blocks: %d" % ("CUDA" if v >= (0, 7, 0) else "GPU", tokens // 16, 2048))
        if engine and v >= (0, 6, 1):
            log("INFO", "gpu_executor.py:126", "Maximum concurrency for %s tokens per request: %.2fx" % (mml, conc))
        return
    if v < (0, 12, 0):  # V1 0.8-0.11
        log("INFO", "gpu_model_runner.py:2653", "Model loading took %.4f GiB and %.6f seconds" % (weights, load_secs), p)
        log("INFO", "gpu_worker.py:298", "Available KV cache memory: %.2f GiB" % kv, p)
        if engine:
            log("INFO", "kv_cache_utils.py:1087", "GPU KV cache size: {:,} tokens".format(tokens))
            log("INFO", "kv_cache_utils.py:1091", "Maximum concurrency for {:,} tokens per request: {:.2f}x".format(mml, conc))
        return
    # 0.12-0.33: format_gib (round to 2 places), "memory and"; the graph estimate from 0.18
    log("INFO", "gpu_model_runner.py:5089", "Model loading took %s GiB memory and %.6f seconds" % (round(weights, 2), load_secs), p)
    if v >= (0, 18, 0):
        log("INFO", "gpu_model_runner.py:6410", "Estimated CUDA graph memory: %.2f GiB total" % graph, p)
    log("INFO", "gpu_worker.py:773", "Available KV cache memory: %s GiB" % round(kv, 2), p)
    if not engine:
        return
    if v >= (0, 33, 0):
        log("INFO", "kv_cache_utils.py:1148", "GPU KV cache size: {:,} tokens, Maximum concurrency for {:,} tokens per request: {:.2f}x".format(tokens, mml, conc))
    else:
        log("INFO", "kv_cache_utils.py:1307", "GPU KV cache size: {:,} tokens".format(tokens))
        log("INFO", "kv_cache_utils.py:1313", "Maximum concurrency for {:,} tokens per request: {:.2f}x".format(mml, conc))


def graph_line(ver, secs, rank=0, nnodes=1):
    graph = figure("VLLM_STANDIN_GRAPH_GIB", rank)
    if _vtuple(ver) >= (0, 8, 0):
        log("INFO", "gpu_model_runner.py:3559", "Graph capturing finished in %.0f secs, took %.2f GiB" % (secs, graph),
            worker_prefix(rank, nnodes))
    else:
        log("INFO", "model_runner.py:1335", "Graph capturing finished in %.0f secs." % secs, worker_prefix(rank, nnodes))


def simulate_loading(delay, shards, ver, nnodes=1):
    t0 = time.time()
    load_part, graph_part = delay * 0.6, delay * 0.3
    log("INFO", "default_loader.py:267", "Loading weights took 0.00 seconds (stand-in: nothing is loaded)")
    tqdm = os.environ.get("VLLM_STANDIN_TQDM") == "1"
    for i in range(shards + 1):
        if i:
            time.sleep(load_part / shards)
        pct = int(100 * i / shards)
        msg = "Loading safetensors checkpoint shards: %3d%% Completed | %d/%d" % (pct, i, shards)
        if tqdm:
            sys.stderr.write("\r" + msg + " [00:00<00:00, 1.00it/s]" + ("\n" if i == shards else ""))
            sys.stderr.flush()
        else:
            log("INFO", "weight_utils.py:412", msg)
    memory_lines(ver, time.time() - t0, 0, nnodes)
    steps = 4
    for i in range(steps + 1):
        if i:
            time.sleep(graph_part / steps)
        log("INFO", "gpu_model_runner.py:3480",
            "Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): %3d%% | %d/%d" % (100 * i // steps, i, steps))
    graph_line(ver, graph_part, 0, nnodes)
    time.sleep(max(0.0, delay - (time.time() - t0)))
    log("INFO", "core.py:214",
        "init engine (profile, create kv cache, warmup model) took %.2f seconds" % (time.time() - t0))


MULTINODE_TIMEOUT = float(os.environ.get("VLLM_STANDIN_MULTINODE_TIMEOUT") or 300)


def _master(args):
    return args.master_addr or "127.0.0.1", int(args.master_port or 29501)


def wait_for_workers(args, nnodes):
    """Rank 0 of `--nnodes N`: wait until the N-1 headless workers report in
    (vLLM's head cannot serve before every rank of the model has joined), then
    watch them: a worker that goes away ends the server, as a lost node does."""
    addr, port = _master(args)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(nnodes)
    srv.settimeout(MULTINODE_TIMEOUT)
    log("INFO", "multiproc_executor.py:120", "node rank 0 of %d on %s: waiting for %d headless worker node(s) on %s:%d"
        % (nnodes, socket.gethostname(), nnodes - 1, addr, port))
    workers = []
    conns = []
    while len(workers) < nnodes - 1:
        try:
            conn, peer = srv.accept()
        except socket.timeout:
            log("ERROR", "multiproc_executor.py:131", "timed out after %ds waiting for %d worker node(s)"
                % (MULTINODE_TIMEOUT, nnodes - 1 - len(workers)))
            raise SystemExit(1)
        hello = conn.makefile().readline().split()
        if len(hello) == 3 and hello[0] == "rank":
            workers.append({"rank": int(hello[1]), "host": hello[2], "addr": peer[0]})
            conns.append(conn)
            log("INFO", "multiproc_executor.py:140", "node rank %s joined from %s (%s)" % (hello[1], hello[2], peer[0]))
    for c in conns:
        threading.Thread(target=_watch_worker, args=(c,), daemon=True).start()
    return sorted(workers, key=lambda w: w["rank"])


def _watch_worker(conn):
    if not conn.recv(1):
        log("ERROR", "multiproc_executor.py:160", "a worker node disconnected: shutting down")
        os._exit(1)


def headless_worker(args, ver):
    """`--headless --node-rank R`: log this node's workers' startup figures (into the job's one log,
    as vLLM's workers do), join rank 0 at --master-addr and run until it goes away."""
    addr, port = _master(args)
    rank = int(args.node_rank or 0)
    nnodes = int(args.nnodes or 1)
    memory_lines(ver, 0.0, rank, nnodes)
    graph_line(ver, 0.0, rank, nnodes)
    deadline = time.time() + MULTINODE_TIMEOUT
    while True:
        try:
            conn = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.time() > deadline:
                log("ERROR", "multiproc_executor.py:170", "could not reach the master %s:%d" % (addr, port))
                return 1
            time.sleep(1)
    conn.sendall(("rank %d %s\n" % (rank, socket.gethostname())).encode())
    log("INFO", "multiproc_executor.py:175", "headless worker node rank %d on %s connected to master %s:%d"
        % (rank, socket.gethostname(), addr, port))
    conn.settimeout(None)
    while conn.recv(1024):
        pass
    log("INFO", "multiproc_executor.py:180", "master went away: headless worker rank %d exits" % rank)
    return 0


def built_to_crash():
    """True for a wheel built with build-wheel.py --crash."""
    try:
        from vllm_standin import _build
    except ImportError:
        return False
    return bool(getattr(_build, "REFUSES_TO_START", False))


def main(argv=None):
    ver = version()
    argv = normalize(list(sys.argv[1:] if argv is None else argv))
    parser, removed_now = build_parser(ver)
    lenient = os.environ.get("VLLM_STANDIN_LENIENT") == "1"
    if lenient:
        args, unknown = parser.parse_known_args(argv)
        bad = [u for u in unknown if u.split("=", 1)[0] in removed_now]
        if bad:
            parser.error("unrecognized arguments: %s" % " ".join(bad))
    else:
        args = parser.parse_args(argv)  # exits 2 on unknown / removed flags
    if args.version:
        print("%s (vllm-standin, not vLLM)" % ver)
        return 0
    if args.subparser != "serve":
        parser.print_help()
        return 2
    if not (args.model_tag or args.model):
        parser.error("serve: a model is required (vllm serve MODEL)")

    here = "api_server.py:1885"
    log("INFO", here, "vLLM API server version %s" % ver)
    log("WARNING", here, "THIS IS vllm-standin, the pulumi-vllm TEST STAND-IN, NOT vLLM: "
                         "no model is loaded and no GPU is used")
    log("INFO", "utils.py:326", "non-default args: %s" % json.dumps(
        {k: v for k, v in sorted(vars(args).items()) if v not in (None, False) and k != "api_key"}))
    for flag, (rv, _) in REMOVED_FLAGS.items():
        if flag not in removed_now and getattr(args, flag[2:].replace("-", "_"), None) not in (None, False):
            log("WARNING", "arg_utils.py:1750", "argument '%s' is deprecated and will be removed in v%s"
                % (flag, ".".join(map(str, rv))))
    nnodes = int(args.nnodes or 1)
    workers = []
    if nnodes > 1:
        if args.headless:
            return headless_worker(args, ver)
        workers = wait_for_workers(args, nnodes)
    weights = cached_weights(args)
    if isinstance(weights, str):
        log("ERROR", "config.py:1302", "OSError: We couldn't connect to 'https://huggingface.co' to load the files, "
                                       "and couldn't find them in the cached files (HF_HUB_OFFLINE=1; stand-in: %s)" % weights)
        return 1
    record(args, ver, workers, weights)

    def on_term(signum, _frame):
        log("INFO", "launcher.py:110", "Shutting down FastAPI HTTP server (signal %d)." % signum)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    delay = float(os.environ.get("VLLM_STANDIN_START_DELAY") or 0)
    shards = max(1, int(os.environ.get("VLLM_STANDIN_SHARDS") or 4))
    crash = args.standin_crash or os.environ.get("VLLM_STANDIN_CRASH") == "1" or built_to_crash()
    long_line = int(os.environ.get("VLLM_STANDIN_LONG_LINE") or 0)
    if long_line > 0:
        log("INFO", "loader.py:1", "Loading weights: " + "w" * long_line)
    if (args.max_model_len or "").isdigit():
        MAX_MODEL_LEN[0] = int(args.max_model_len)
    simulate_loading(delay, shards, ver, nnodes)
    if crash:
        log("ERROR", "core.py:708", "EngineCore failed to start.")
        leaked = []
        for name in filter(None, (os.environ.get("VLLM_STANDIN_LEAK_ENV") or "").split(",")):
            leaked.append("%s=%s" % (name, os.environ.get(name, "")))
        if leaked:
            log("ERROR", "core.py:710", "huggingface_hub.errors.HfHubHTTPError: 401 Client Error "
                                        "(simulated leak by the stand-in: %s)" % " ".join(leaked))
        log("ERROR", "core.py:712",
            "RuntimeError: vllm-standin %s: simulated crash (%s)"
            % (ver, "this build refuses to start: build-wheel.py --crash" if built_to_crash() else "--standin-crash or VLLM_STANDIN_CRASH=1"))
        return 1

    state = State(args, ver)
    host = args.host or ""
    port = int(args.port or 8000)
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    if ":" in host:
        ThreadingHTTPServer.address_family = socket.AF_INET6
    try:
        httpd = ThreadingHTTPServer((host, port), make_handler(state))
    except OSError as e:
        log("ERROR", here, "[Errno %s] error while attempting to bind on address (%r, %d): %s"
            % (e.errno, host, port, e.strerror))
        return 1
    log("INFO", here, "Starting vLLM API server 0 on http://%s:%d" % (host or "0.0.0.0", port))
    log("INFO", "launcher.py:37", "Available routes are: /health, /v1/models, /v1/chat/completions, /metrics, /version")
    log("INFO", "server.py:82", "Started server process [%d]" % os.getpid())
    log("INFO", "on.py:48", "Waiting for application startup.")
    log("INFO", "on.py:62", "Application startup complete.")
    try:
        httpd.serve_forever(poll_interval=0.5)
    except SystemExit:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
