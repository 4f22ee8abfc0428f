// What a config string may hold, by what it is. Every string of the stack
// config ends up somewhere that parses it: a shell (the host steps' `env`
// arguments, the SLURM batch script), a systemd unit file, an environment
// file, a `#SBATCH` line, argv. Each of those has its own metacharacters, so
// the schema accepts a value only in the form its destination can carry
// inertly, and refuses the rest with `key: what is wrong -> what to do`
// before any host is touched.
//
// Rules shared by every string:
// - one line: no line break (it would start a new shell, unit or #SBATCH line);
// - no NUL (cannot be passed in argv at all), no other control character;
// - no invisible characters (bidi controls, zero-width characters): they make
//   the text shown in a review or a terminal differ from what runs;
// - a length limit per kind, far below Linux's 128 KiB limit of one argument
//   (a host step's whole command is one `bash -c` argument).
//
// Messages never echo the value: a secret pasted into the wrong key must not
// end up in a CI log.
import * as net from "net";
import { z } from "zod";

/** Characters that make displayed text differ from its content: bidi controls, zero-width and other invisible format characters. */
const INVISIBLE = /[\u00AD\u061C\u115F\u1160\u17B4\u17B5\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\u3164\uFEFF\uFFA0\uFFF9-\uFFFB]/u;
/** C0 and C1 control characters and DEL (a line break is one of them, named on its own). */
const CONTROL = /[\u0000-\u001F\u007F-\u009F\u2028\u2029]/u;

const hex = (ch: string) => "U+" + ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");

/** What is wrong with the characters of `s`, as `what -> fix`, or undefined. */
export function badCharacters(s: string): string | undefined {
  if (/[\r\n\u2028\u2029\u0085]/.test(s)) {
    return "holds a line break -> put the value on one line (a line break would start a new line of the unit file, batch script or shell command it goes into)";
  }
  if (s.includes("\0")) return "holds a NUL byte -> remove it (a NUL cannot be passed to a program)";
  const ctl = CONTROL.exec(s);
  if (ctl) return `holds the control character ${hex(ctl[0])} -> remove it`;
  const inv = INVISIBLE.exec(s);
  if (inv) {
    return `holds the invisible character ${hex(inv[0])} (a bidi control or zero-width character: what is shown differs from what runs) -> retype the value without it`;
  }
  return undefined;
}

/** Escape every character a terminal would not show as itself (controls, bidi, zero-width) as <U+XXXX>; keeps \n and \t. */
export function terminalSafe(text: string): string {
  const re = new RegExp(`(?![\\n\\t])(?:${CONTROL.source}|${INVISIBLE.source})`, "gu");
  return text.replace(re, (ch) => `<${hex(ch)}>`);
}

/** The same for a JSON document: invisible characters become \uXXXX escapes, which JSON.parse reads back as they were. */
export function jsonTerminalSafe(json: string): string {
  const re = new RegExp(`${CONTROL.source}|${INVISIBLE.source}`, "gu");
  return json.replace(re, (ch) => (ch === "\n" ? ch : "\\u" + ch.codePointAt(0)!.toString(16).padStart(4, "0")));
}

export interface TextSpec {
  /** Most characters the value may have. */
  max: number;
  /** Allowed characters (a character class without the brackets' anchors), e.g. /[A-Za-z0-9._-]/. */
  chars?: RegExp;
  /** Says which characters are allowed, for the message: "letters, digits, `.`, `_` and `-`". */
  charsHint?: string;
  /** May the value be empty? Default: no. */
  empty?: boolean;
  /** May the value start with `-`? Default: no (a program would read it as an option). */
  leadingDash?: boolean;
  /** Further check of the whole value: returns `what -> fix` or undefined. */
  check?: (s: string) => string | undefined;
}

/** The first problem of a string value, as `what -> fix`, or undefined. */
export function textProblem(s: string, spec: TextSpec): string | undefined {
  if (s.length > spec.max) return `is ${s.length} characters long, more than the ${spec.max} allowed -> shorten it`;
  const chars = badCharacters(s);
  if (chars) return chars;
  if (!spec.empty && s.trim() === "") return "is empty -> give a value, or remove the key to use the default";
  if (spec.chars) {
    const allowed = new RegExp(`^(?:${spec.chars.source})*$`, "u");
    if (!allowed.test(s)) {
      const bad = [...s].find((ch) => !new RegExp(`^(?:${spec.chars!.source})$`, "u").test(ch))!;
      const shown = /^[\x21-\x7E]$/.test(bad) ? `\`${bad}\`` : bad === " " ? "a space" : hex(bad);
      return `may hold only ${spec.charsHint ?? "letters, digits and . _ -"}, not ${shown} -> remove it`;
    }
  }
  if (!spec.leadingDash && s.startsWith("-")) return "starts with `-`, which a program would read as an option -> remove the leading `-`";
  return spec.check?.(s);
}

/** A string schema validated by `spec`; every problem is one `what -> fix` message. */
export function text(spec: TextSpec) {
  return z.string().superRefine((s, ctx) => {
    const p = textProblem(s, spec);
    if (p) ctx.addIssue({ code: "custom", message: p });
  });
}

// ---- kinds ---------------------------------------------------------------

/** Free text shown to people (a GPU's name): one line, printable. */
export const label = (max = 128) => text({ max, leadingDash: true });

const PATH_CHARS = /[A-Za-z0-9._+@\/-]/;
const PATH_HINT = "letters, digits and . _ + @ / -";

/** Directories whose loss or takeover breaks a system: never a path this project writes (and deletes) as its own. */
const SYSTEM_DIRS = new Set([
  "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media", "/mnt", "/opt", "/proc", "/root", "/run",
  "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/local/bin", "/usr/sbin", "/usr/share",
  "/var", "/var/cache", "/var/lib", "/var/log", "/var/tmp", "/dev/shm", "/scratch", "/data", "/shared",
]);

function normalizedPathProblem(p: string): string | undefined {
  if (!p.startsWith("/")) return "is not an absolute path -> give the full path from / (it is used on the host, where no working directory applies)";
  if (p.includes("//")) return "has an empty segment (`//`) -> write the path in its normal form";
  const segs = p.split("/").slice(1);
  if (segs.some((s) => s === "." || s === "..")) return "has a `.` or `..` segment -> write the path in its normal form, without `.` and `..`";
  if (p.length > 1 && p.endsWith("/")) return "ends with `/` -> remove the trailing `/`";
  if (segs.some((s) => s.startsWith("-"))) return "has a segment starting with `-` -> rename it (a program would read it as an option)";
  return undefined;
}

/** An absolute, normalized path on the host (it goes into argv, a unit file and shell words). */
export const hostPath = (opts: { ownDir?: boolean } = {}) =>
  text({
    max: 256,
    chars: PATH_CHARS,
    charsHint: PATH_HINT,
    check: (p) =>
      normalizedPathProblem(p) ??
      (opts.ownDir && SYSTEM_DIRS.has(p)
        ? "is a system directory; this project writes (and on destroy removes) what it puts there -> use a directory of its own below it, e.g. /opt/pulumi-vllm/venv"
        : undefined),
  });

/** A path on the machine that runs Pulumi (a key file, a config.json): relative to the project directory, or `~/...`. */
export const localPath = () => text({ max: 4096, leadingDash: true });

/** Top directories anyone may write to: a file below them can be replaced or read by another user. */
const WORLD_WRITABLE = ["/tmp", "/var/tmp", "/dev/shm", "/run/shm", "/var/lock", "/run/lock"];

export function worldWritableLooking(p: string): boolean {
  return WORLD_WRITABLE.some((d) => p === d || p.startsWith(d + "/"));
}

/** A systemd service name (no leading `-` or `.`, no template without instance). */
export const unitName = () =>
  text({
    max: 255,
    chars: /[A-Za-z0-9_.@-]/,
    charsHint: "letters, digits and _ . @ -",
    check: (u) =>
      !/\.service$/.test(u) || u === ".service"
        ? "must be a systemd unit name ending in .service -> e.g. vllm.service"
        : u.startsWith(".")
          ? "starts with `.` -> start with a letter or digit"
          : /@\.service$/.test(u)
            ? "is a template without an instance -> name the instance (vllm@a.service) or drop the @"
            : undefined,
  });

/** Names of accounts that are the system's own: vLLM never runs as one, nor becomes one. */
const SYSTEM_USERS = new Set(["root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody", "_apt", "messagebus", "sshd", "systemd-network", "systemd-resolve", "systemd-timesync"]);

/** The account vLLM runs as, for useradd and systemd's User= (lower case, portable, at most 32 characters). */
export const serviceUserName = () =>
  text({
    max: 32,
    chars: /[a-z0-9_-]/,
    charsHint: "lower-case letters, digits, _ and -",
    check: (u) =>
      !/^[a-z_]/.test(u)
        ? "must start with a lower-case letter or _ -> e.g. vllm"
        : SYSTEM_USERS.has(u)
          ? "is an account of the system itself: vLLM would run with its rights (and destroy could remove it) -> use a user of its own, e.g. vllm"
          : undefined,
  });

/** Is `h` an IP address or an RFC 1123 host name? */
export function isHostOrIp(h: string): boolean {
  if (net.isIP(h)) return true;
  if (h.length > 253) return false;
  const labels = h.replace(/\.$/, "").split(".");
  // Underscores are not RFC 1123, but internal DNS names have them; they mean nothing to a shell.
  return labels.every((l) => /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(l));
}

/** A DNS host name or an IPv4/IPv6 address. */
export const hostName = () =>
  text({
    max: 253,
    chars: /[A-Za-z0-9_.:-]/,
    charsHint: "letters, digits and . - _ : (a host name or an IP address)",
    check: (h) => (isHostOrIp(h) ? undefined : "is not a host name or an IP address -> give e.g. gpu1.example.org, 10.0.0.5 or ::1"),
  });

/** A login name on the host. */
export const userName = () =>
  text({ max: 64, chars: /[A-Za-z0-9_.@$-]/, charsHint: "letters, digits and _ . @ -", check: (u) => (/^[A-Za-z_]/.test(u) ? undefined : "must start with a letter or `_` -> fix the user name") });

/** A SLURM partition / account / QOS name (a partition may be a comma-separated list). */
export const slurmName = (opts: { list?: boolean; max?: number } = {}) =>
  text({
    max: opts.max ?? 64,
    chars: opts.list ? /[A-Za-z0-9_.+,-]/ : /[A-Za-z0-9_.+-]/,
    charsHint: `letters, digits and _ . + -${opts.list ? " (and , between names)" : ""}`,
    check: (n) => (opts.list && n.split(",").some((x) => x === "" || x.startsWith("-")) ? "has an empty name in the list -> write names separated by single commas" : undefined),
  });

/** A job name: also names files on the shared filesystem. */
export const jobName = () =>
  text({ max: 64, chars: /[A-Za-z0-9_.-]/, charsHint: "letters, digits and _ . -", check: (n) => (n.startsWith(".") ? "starts with `.` -> start with a letter or digit" : undefined) });

/** A Hugging Face model id (`org/name`, or a bare legacy name), or an absolute path to a checkpoint on the host. */
export const modelId = () =>
  text({
    max: 200,
    chars: /[A-Za-z0-9._\/-]/,
    charsHint: "letters, digits and . _ - / (a Hugging Face id like Qwen/Qwen2.5-14B-Instruct)",
    check: (id) => {
      if (id.startsWith("/")) return normalizedPathProblem(id);
      const parts = id.split("/");
      if (parts.length > 2) return "has more than one `/` -> a Hugging Face id is org/name (or an absolute path to a checkpoint on the host)";
      if (parts.some((p) => !/^[A-Za-z0-9]/.test(p) || /(\.\.|--)/.test(p) || /[.-]$/.test(p))) {
        return "is not a Hugging Face id (each part starts with a letter or digit, without `..` or `--`, not ending in . or -) -> e.g. Qwen/Qwen2.5-14B-Instruct";
      }
      return undefined;
    },
  });

/** A git revision: branch, tag or commit. */
export const revision = () =>
  text({
    max: 128,
    chars: /[A-Za-z0-9._\/-]/,
    charsHint: "letters, digits and . _ / -",
    check: (r) => (/\.\.|\/\/|^\/|\/$|\.lock$/.test(r) ? "is not a git branch, tag or commit -> give a commit hash (40 hex digits) or a tag" : undefined),
  });

/** A name the server answers to (`model` in requests). */
export const servedName = () => text({ max: 128, chars: /[A-Za-z0-9._\/:@+-]/, charsHint: "letters, digits and . _ / : @ + -" });

/** An environment variable name. */
export const envName = () =>
  text({ max: 128, chars: /[A-Z0-9_]/, charsHint: "capital letters, digits and _", check: (n) => (/^[A-Z_]/.test(n) ? undefined : "starts with a digit -> an environment variable name starts with a letter or _") });

/** Names that hold credentials: their values belong in secret config, never in plain config, state or a unit file. */
export const SECRET_ENV_NAMES = ["VLLM_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN", "HF_HUB_TOKEN", "RAY_AUTH_TOKEN"];

/** Does an environment variable name look like it holds a credential? (TOKENIZERS_PARALLELISM does not.) */
export function isSecretEnvName(name: string): boolean {
  if (SECRET_ENV_NAMES.includes(name)) return true;
  const words = name.split("_");
  if (words.some((w) => ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIALS", "CREDENTIAL"].includes(w))) return true;
  return /(^|_)(API|ACCESS|PRIVATE|AUTH|SECRET)_KEY($|_)/.test(name);
}

/** vLLM flags whose value is a credential. */
export const SECRET_FLAGS = ["--api-key", "--hf-token"];

// ---- describing a value without echoing it --------------------------------

/** What a value is, for `expected X, got Y`: short plain strings are quoted, anything that might be a secret is not. */
export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  if (typeof v === "boolean") return "a boolean";
  if (typeof v === "number") return Number.isFinite(v) ? "a number" : "a non-finite number";
  if (typeof v === "string") {
    if (v === "") return "an empty string";
    // Short words only: a token pasted into the wrong key is long, and stays out of logs.
    if (v.length <= 12 && !textProblem(v, { max: 12, leadingDash: true, chars: /[A-Za-z0-9 ._:+-]/ })) return `the string '${v}'`;
    return `a string of ${v.length} characters`;
  }
  return `a ${typeof v}`;
}
