"""Ask one installed vLLM release what its own `vllm serve` parser accepts.

Run with the python of a venv that has `vllm==X` (scripts/ensure-vllm-releases.sh
makes them). Reads one JSON request on stdin, prints one JSON answer on
stdout (vLLM's own logging goes to stderr):

  request  {"flags": ["--swap-space", ...],          # is the flag accepted?
            "values": [["--kv-cache-dtype", "fp8"]], # is flag+value accepted?
            "argvs": [{"id": "...", "argv": ["serve", "model", "--flag", ...]}],
            "batchDefaults": [{"id": "...", "memoryGiB": 80, "name": "H100 80GB"}]}
  answer   {"version", "parserModule", "flags": {flag: {"accepted", "error"}},
            "values": [...], "envs": [names in vllm/envs.py], "argvs": [{"id",
            "ok", "error", "namespace"}], "gpuMemoryUtilizationDefault",
            "batchDefaults": [{"id", "maxNumSeqs", "maxNumBatchedTokens"} or
            {"id", "unsupported": why}]}

No GPU: vLLM picks its platform by probing the machine, and without a GPU
the parser cannot be built ("Failed to infer device type"), so the CPU
platform is forced first; the parser itself does not depend on the device.
"""
import contextlib
import importlib
import io
import json
import os
import sys

os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import vllm.platforms  # noqa: E402

try:
    from vllm.platforms.cpu import CpuPlatform
except ImportError:  # 0.6.x: no CPU platform; without a GPU it settles on UnspecifiedPlatform itself
    from vllm.platforms.interface import UnspecifiedPlatform as CpuPlatform
else:
    vllm.platforms._current_platform = CpuPlatform()

import vllm  # noqa: E402
import vllm.envs  # noqa: E402
from vllm.engine import arg_utils  # noqa: E402

try:  # FlexibleArgumentParser moved between releases
    from vllm.utils.argparse_utils import FlexibleArgumentParser
except ImportError:
    from vllm.utils import FlexibleArgumentParser


def load_make_arg_parser():
    # vllm.entrypoints.openai.cli_args in older releases, .common.cli_args in newer ones.
    for mod in ("vllm.entrypoints.common.cli_args", "vllm.entrypoints.openai.cli_args"):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        if hasattr(m, "make_arg_parser"):
            return mod, m
    raise SystemExit("probe: no make_arg_parser in this vLLM release")


PARSER_MODULE, cli_args = load_make_arg_parser()


class ParseError(Exception):
    pass


class Parser(FlexibleArgumentParser):
    """The serve parser, with argparse's exit turned into an exception carrying the message."""

    def error(self, message):
        raise ParseError(message)

    def exit(self, status=0, message=None):
        raise ParseError(message or "exit %s" % status)


def make_parser():
    p = Parser(prog="vllm serve", description="vLLM OpenAI-compatible API server")
    # `vllm serve MODEL`: newer make_arg_parser adds the positional itself; the
    # older CLI (vllm/scripts.py) added it to the subparser before calling it.
    p = cli_args.make_arg_parser(p)
    if "model_tag" not in {a.dest for a in p._actions}:
        p.add_argument("model_tag", type=str, nargs="?")
    return p


PARSER = make_parser()


def plain(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    return repr(v)


def parse(argv):
    """argv after `vllm serve`. Returns (namespace dict, None) or (None, error)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns = PARSER.parse_args(argv)
            if hasattr(cli_args, "validate_parsed_serve_args"):
                cli_args.validate_parsed_serve_args(ns)
    except ParseError as e:
        return None, str(e)
    except (TypeError, ValueError) as e:  # validate_parsed_serve_args raises these
        return None, "%s: %s" % (type(e).__name__, e)
    return {k: plain(v) for k, v in vars(ns).items()}, None


def flag_accepted(flag):
    """Is the flag known? An argparse 'unrecognized arguments' names it; a
    missing value ('expected one argument') means it is known."""
    _, error = parse(["m", flag])
    if error is None:
        return True, None
    unknown = "unrecognized arguments" in error and flag in error.split("unrecognized arguments:")[-1].split()
    return (not unknown), error


def value_accepted(flag, value):
    _, error = parse(["m", flag, value])
    return error is None, error


def env_names():
    # vllm/envs.py: a dict of lazily read variables.
    names = set(getattr(vllm.envs, "environment_variables", {}).keys())
    return sorted(names)


def default_of(dest):
    for a in PARSER._actions:
        if a.dest == dest:
            return plain(a.default)
    return None


class StatedGpu(CpuPlatform):
    """A GPU platform of a stated size and name, for vLLM's own defaulting code."""

    def __init__(self, memory_gib, name):
        super().__init__()
        self._bytes = int(memory_gib * (1 << 30))
        self._name = name

    def get_device_total_memory(self, device_id=0):
        return self._bytes

    def get_device_name(self, device_id=0):
        return self._name

    def is_device_capability(self, *a, **k):
        return False

    def is_cpu(self):
        return False

    def is_tpu(self):
        return False

    def is_cuda(self):
        return True


def batch_defaults(memory_gib, name):
    """(max_num_seqs, max_num_batched_tokens) of `vllm serve` as the release computes them
    for a GPU of the stated memory and name; (None, why) where it cannot be asked."""
    import types

    from vllm.usage.usage_lib import UsageContext

    ctx = UsageContext.OPENAI_API_SERVER
    EngineArgs = arg_utils.EngineArgs
    if not hasattr(arg_utils, "current_platform"):  # 0.6.x (V0): nothing device-dependent in EngineArgs
        return None, "V0 release: max_num_seqs is EngineArgs' fixed default %s whatever the device, and max_num_batched_tokens follows max_model_len (no device-dependent defaulting code to call)" % EngineArgs.max_num_seqs
    saved = arg_utils.current_platform
    arg_utils.current_platform = StatedGpu(memory_gib, name)
    try:
        if hasattr(EngineArgs, "get_batch_defaults"):  # 0.14+: a pure function of the device
            import inspect

            fn = EngineArgs.get_batch_defaults
            tokens, seqs = fn(1) if "world_size" in inspect.signature(fn).parameters else fn()
            return (seqs[ctx], tokens[ctx]), None
        # 0.9-0.13: inside EngineArgs._set_default_args(_v1)(usage_context, model_config);
        # it reads only the runner type and max_model_len of the model config.
        fn = getattr(EngineArgs, "_set_default_args", None) or getattr(EngineArgs, "_set_default_args_v1", None)
        if fn is None:
            return None, "V0 release: max_num_seqs is EngineArgs' fixed default %s whatever the device, and max_num_batched_tokens follows max_model_len (no device-dependent defaulting code to call)" % EngineArgs.max_num_seqs
        args = EngineArgs(model="m")
        stub = types.SimpleNamespace(runner_type="generate", max_model_len=32768, is_multimodal_model=False)
        fn(args, ctx, stub)
        return (args.max_num_seqs, args.max_num_batched_tokens), None
    except Exception as e:  # the release's code wants more than the stub gives
        return None, "%s could not be called with a stated device: %s: %s" % (getattr(fn, "__name__", fn), type(e).__name__, e)
    finally:
        arg_utils.current_platform = saved


def main():
    req = json.load(sys.stdin)
    out = {
        "version": vllm.__version__,
        "parserModule": PARSER_MODULE,
        "python": sys.version.split()[0],
        "flags": {},
        "values": [],
        "envs": env_names(),
        "argvs": [],
        "gpuMemoryUtilizationDefault": default_of("gpu_memory_utilization"),
        "batchDefaults": [],
    }
    for f in req.get("flags", []):
        ok, error = flag_accepted(f)
        out["flags"][f] = {"accepted": ok, "error": error}
    for f, v in req.get("values", []):
        ok, error = value_accepted(f, v)
        out["values"].append({"flag": f, "value": v, "accepted": ok, "error": error})
    for a in req.get("argvs", []):
        ns, error = parse(a["argv"])
        out["argvs"].append({"id": a["id"], "ok": error is None, "error": error, "namespace": ns})
    for b in req.get("batchDefaults", []):
        got, why = batch_defaults(b["memoryGiB"], b["name"])
        if got is None:
            out["batchDefaults"].append({"id": b["id"], "unsupported": why})
        else:
            out["batchDefaults"].append({"id": b["id"], "maxNumSeqs": got[0], "maxNumBatchedTokens": got[1]})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
