#!/usr/bin/env bash
# pulumi-vllm host step: uv-venv
#
# Installs uv at a pinned version (from the PyPI wheel, NOT the GitHub
# installer) and creates a Python virtual environment with it.
#
# Inputs (environment):
#   PV_ACTION               create | delete
#   PV_UV_VERSION           uv version to pin, e.g. 0.9.9 (required)
#   PV_UV_INDEX_URL         package index the uv wheel comes from (default
#                           https://pypi.org). Either a PyPI-like root serving
#                           the JSON API at <url>/pypi/uv/json, or a simple
#                           index ending in /simple (PEP 691 JSON); HPC sites
#                           point this at their mirror. Never with a login in
#                           it: that comes on stdin (below)
#   PV_VENV_PATH            absolute path of the venv, e.g. /opt/pulumi-vllm/venv
#   PV_UV_ONLY              optional: 1 = install uv only, no venv (PV_VENV_PATH
#                           and PV_PYTHON are not read): on a single host the
#                           vllm-install step makes one venv per release itself
#   PV_PYTHON               interpreter for the venv: a version (3.11, 3.11.2)
#                           or an absolute path of a system interpreter
#   PV_ALLOW_PYTHON_DOWNLOAD  1 = let uv download a managed Python when the
#                           host has none that matches (default 0: only
#                           system interpreters, UV_PYTHON_DOWNLOADS=never)
#   PV_UV_DIR               optional: where uv versions live (default
#                           /opt/pulumi-vllm/uv); uv goes to PV_UV_DIR/<version>/uv
#   PV_ADOPT                optional: 1 = take over a venv at PV_VENV_PATH that
#                           this step did not make (default 0: refuse it; an
#                           adopted venv is left in place by delete)
#   PV_STATE_DIR            optional: state root (default /var/lib/pulumi-vllm);
#                           this step keeps its state in PV_STATE_DIR/uv-venv
#   (Root is needed only for the default dirs: on a SLURM login node the step
#   runs as the user with PV_UV_DIR / PV_STATE_DIR / PV_VENV_PATH on a shared
#   filesystem.)
# Secrets (stdin, optional): an `INDEX_CREDENTIALS=<user>:<password>` line,
#   the login to PV_UV_INDEX_URL (a private mirror; the stack's secret
#   indexCredentials). Sent as HTTP Basic auth to the index's host only (not
#   to another host a file URL or a redirect points at); python gets it in
#   its environment, never in argv; whatever python prints goes through
#   redact (lib/redact.sh). Other NAME=value lines are ignored.
#
# create:
#   - uv: skipped when PV_UV_DIR/<version>/uv exists and reports that
#     version; otherwise the wheel for this machine (arch, glibc or musl) is
#     fetched from the index, its sha256 checked against the index's, and the
#     `uv` binary extracted to PV_UV_DIR/<version>/uv.
#   - venv: skipped when PV_VENV_PATH is a venv of the wanted Python (same
#     major.minor, or the same full version when PV_PYTHON gives one);
#     (re)created with `uv venv` when absent or the Python version differs.
#     A different patch release of the same Python keeps the venv (and the
#     vLLM installed in it).
# Ownership: create refuses a venv it has no record of (made by someone
#   else) unless PV_ADOPT=1, and never replaces a directory that is not a venv.
# delete:
#   removes the venv it made (only if it is a venv: has pyvenv.cfg) and the uv
#   version under PV_UV_DIR, unless another venv step still uses it; then the
#   directories it made if empty.
#
# A create or update that fails half-way leaves the host as it was: a new uv
# or venv is removed again, a replaced one (other Python, other uv) is kept
# aside until the run succeeds and put back otherwise (lib/txn.sh). Time
# limit: 1800 s (PV_STEP_TIMEOUT).
# State for undo: PV_STATE_DIR/uv-venv/<sha of venv path>.state
# Needs: write access to the dirs above (root for the defaults), python3
# (reads the index JSON, checks the hash, unpacks the wheel), network access
# to the index.
# Output: progress on stderr; the last stdout line is `changed` or `unchanged`.
set -euo pipefail

log() { printf 'uv-venv: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# shellcheck source=SCRIPTDIR/lib/txn.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/txn.sh"
# shellcheck source=SCRIPTDIR/lib/redact.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/redact.sh"
# shellcheck source=SCRIPTDIR/lib/index-login.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/index-login.sh"
trap 'log "ERROR: unexpected failure (exit $?) at line $LINENO"' ERR
cd /  # a neutral cwd: uv reads uv.toml/pyproject.toml from it, and it may be unreadable

ACTION=${PV_ACTION:-}
UV_VERSION=${PV_UV_VERSION:-}
INDEX_URL=${PV_UV_INDEX_URL:-https://pypi.org}
VENV=${PV_VENV_PATH:-}
PYTHON_SPEC=${PV_PYTHON:-}
ALLOW_DL=${PV_ALLOW_PYTHON_DOWNLOAD:-0}
ADOPT=${PV_ADOPT:-0}
UV_ONLY=${PV_UV_ONLY:-0}
[[ $UV_ONLY == 0 || $UV_ONLY == 1 ]] || { log "ERROR: PV_UV_ONLY must be 0 or 1"; exit 1; }

UV_ROOT=${PV_UV_DIR:-/opt/pulumi-vllm/uv}
UV_ROOT=${UV_ROOT%/}
STATE_ROOT=${PV_STATE_DIR:-/var/lib/pulumi-vllm}
STATE_ROOT=${STATE_ROOT%/}
STATE_DIR=$STATE_ROOT/uv-venv

[[ $UV_ROOT == /* && $STATE_ROOT == /* ]] || die "PV_UV_DIR and PV_STATE_DIR must be absolute paths"
# Root is needed only where the (default) dirs are not writable.
writable_or_root() {
  local d=$1
  while [[ ! -e $d ]]; do d=$(dirname "$d"); done
  [[ -w $d ]] || die "cannot write $1 as $(id -un): run as root (sudo) or point PV_UV_DIR / PV_STATE_DIR / PV_VENV_PATH at writable paths"
}
[[ $ACTION == create || $ACTION == delete ]] || die "PV_ACTION must be create or delete, got '$ACTION'"
[[ $UV_VERSION =~ ^[0-9]+(\.[0-9]+){1,3}$ ]] || die "PV_UV_VERSION must be a release like 0.9.9, got '$UV_VERSION'"
if [[ $UV_ONLY == 1 ]]; then
  VENV=
else
  [[ $VENV == /* ]] || die "PV_VENV_PATH must be an absolute path, got '$VENV'"
  VENV=${VENV%/}
  # A venv path is removed with rm -rf on recreate/delete: refuse shallow paths.
  case $VENV in
    */../* | */.. | */./* | */.) die "PV_VENV_PATH must be a normalized path, got '$VENV'" ;;
  esac
  depth=$(tr -cd '/' <<<"$VENV" | wc -c)
  (( depth >= 2 )) || die "PV_VENV_PATH '$VENV' is too shallow (want at least /a/b)"
fi
[[ $ALLOW_DL == 0 || $ALLOW_DL == 1 ]] || die "PV_ALLOW_PYTHON_DOWNLOAD must be 0 or 1"

UV_DIR="$UV_ROOT/$UV_VERSION"
UV_BIN="$UV_DIR/uv"
if [[ $UV_ONLY == 1 ]]; then state_key=uv-only; else state_key=$(printf '%s' "$VENV" | sha256sum | cut -c1-16); fi
STATE="$STATE_DIR/$state_key.state"

uv_ok() { [[ -x $UV_BIN ]] && [[ $("$UV_BIN" --version 2>/dev/null) =~ ^uv\ ${UV_VERSION//./\\.}([[:space:]]|$) ]]; }

# venv's Python version (X.Y.Z) from pyvenv.cfg, empty when not a venv.
venv_python_version() {
  local cfg="$VENV/pyvenv.cfg" v
  [[ -f $cfg && -x $VENV/bin/python ]] || return 0
  v=$(sed -n 's/^version_info[[:space:]]*=[[:space:]]*//p; s/^version[[:space:]]*=[[:space:]]*//p' "$cfg" | head -n 1)
  printf '%s' "${v%%[!0-9.]*}"
}

write_state() {
  txn_new_dir "$STATE_DIR"
  txn_save "$STATE"
  install -d -m 0755 "$STATE_DIR"
  local tmp
  tmp=$(mktemp "$STATE_DIR/.state.XXXXXX")
  printf 'venv=%s\nuv_version=%s\nadopted=%s\n' "$VENV" "$UV_VERSION" "${ADOPTED:-0}" >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$STATE"
}

state_get() { if [[ -f $STATE ]]; then sed -n "s/^$1=//p" "$STATE" | head -n 1; fi; }

# Is uv version $1 used by another venv step (another state file)?
uv_used_elsewhere() {
  local f
  for f in "$STATE_DIR"/*.state; do
    [[ -f $f && $f != "$STATE" ]] || continue
    if grep -qx "uv_version=$1" "$f"; then return 0; fi
  done
  return 1
}

remove_empty_dirs() {
  local d
  for d in "$UV_ROOT" "$STATE_DIR" "$STATE_ROOT" /opt/pulumi-vllm; do
    if [[ -d $d ]]; then rmdir --ignore-fail-on-non-empty -- "$d" 2>/dev/null || true; fi
  done
}

install_uv() {
  log "installing uv $UV_VERSION from $INDEX_URL${INDEX_USER:+ (with the login of indexCredentials)}"
  txn_new_dir "$UV_ROOT"
  install -d -m 0755 "$UV_ROOT"
  local tmp
  tmp=$(mktemp -d "$UV_ROOT/.uv-$UV_VERSION.XXXXXX")
  txn_undo rm -rf -- "$tmp"
  # (the login in python's environment, read and dropped first thing; all it prints is redacted)
  PV_TMP=$tmp PV_UV_VERSION=$UV_VERSION PV_INDEX=$INDEX_URL PV_INDEX_LOGIN=${INDEX_USER:+$INDEX_USER:$INDEX_PASSWORD} python3 - <<'PY' 2>&1 | redact >&2 ||
import hashlib, json, os, platform, re, ssl, sys, time, urllib.parse, urllib.request, zipfile

version, index, tmp = os.environ["PV_UV_VERSION"], os.environ["PV_INDEX"].rstrip("/"), os.environ["PV_TMP"]
login = os.environ.pop("PV_INDEX_LOGIN", "")

def fail(msg):
    sys.stderr.write("uv-venv: ERROR: %s\n" % msg)
    sys.exit(1)

# The login goes to the index's own scheme://host:port only, sent up front (HTTP Basic); urllib does not carry it
# over a redirect to another host (an unredirected header).
handlers = []
if login:
    user, _, password = login.partition(":")
    parts = urllib.parse.urlsplit(index)
    logins = urllib.request.HTTPPasswordMgrWithPriorAuth()
    logins.add_password(None, "%s://%s/" % (parts.scheme, parts.netloc), user, password, is_authenticated=True)
    handlers.append(urllib.request.HTTPBasicAuthHandler(logins))
opener = urllib.request.build_opener(*handlers)

def refused(e):
    """The fix for an index that answered 401/403."""
    if login:
        return "%s refused the login of indexCredentials (HTTP %d) -> check the user and the token, and that they may read this index: pulumi config set --secret indexCredentials '<user>:<password>'" % (index, e.code)
    return "%s needs a login (HTTP %d) -> pulumi config set --secret indexCredentials '<user>:<password>'" % (index, e.code)

def fetch(url, accept=None, attempts=4):
    req = urllib.request.Request(url, headers={"User-Agent": "pulumi-vllm-uv-venv"})
    if accept:
        req.add_header("Accept", accept)
    last = None
    for i in range(attempts):
        try:
            with opener.open(req, timeout=60) as r:
                return r.read(), r.geturl()
        except urllib.error.HTTPError as e:
            if e.code in (401, 403, 404, 410):
                raise
            last = e
        except Exception as e:  # network hiccup: retry
            last = e
        time.sleep(2 * (i + 1))
    raise last

machine = platform.machine().lower()
arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
libc, libc_ver = platform.libc_ver()
musl = libc != "glibc"
glibc = tuple(int(x) for x in (libc_ver or "0.0").split(".")[:2]) if not musl else (0, 0)

def score(filename):
    """Higher is better; None when the wheel cannot run here."""
    if not filename.endswith(".whl"):
        return None
    plat = filename[:-4].split("-")[-1]
    best = None
    for tag in plat.split("."):
        m = re.match(r"^manylinux_(\d+)_(\d+)_(.+)$", tag)
        legacy = {"manylinux1_": (2, 5), "manylinux2010_": (2, 12), "manylinux2014_": (2, 17)}
        if m:
            req, t_arch = (int(m.group(1)), int(m.group(2))), m.group(3)
        elif any(tag.startswith(k) for k in legacy):
            k = [k for k in legacy if tag.startswith(k)][0]
            req, t_arch = legacy[k], tag[len(k):]
        else:
            mm = re.match(r"^musllinux_(\d+)_(\d+)_(.+)$", tag)
            if mm and musl and mm.group(3) == arch:
                s = (1, int(mm.group(1)), int(mm.group(2)))
                best = s if best is None or s > best else best
            continue
        if musl or t_arch != arch or req > glibc:
            continue
        s = (2,) + req
        best = s if best is None or s > best else best
    return best

files = None
source = None
try:
    body, _ = fetch(index + "/pypi/uv/json")
    data = json.loads(body)
    rel = data.get("releases", {}).get(version)
    if rel is None:
        fail("uv %s is not on %s (latest there: %s)" % (version, index, data.get("info", {}).get("version")))
    files = [(f["filename"], urllib.parse.urljoin(index + "/pypi/uv/json", f["url"]),
              f.get("digests", {}).get("sha256"), f.get("yanked", False)) for f in rel]
    source = index + "/pypi/uv/json"
except urllib.error.HTTPError as e:
    if e.code in (401, 403):
        fail(refused(e))
    if e.code != 404:
        fail("cannot read %s/pypi/uv/json: HTTP %s" % (index, e.code))
if files is None:
    simple = index if index.endswith("/simple") else index + "/simple"
    url = simple + "/uv/"
    try:
        body, final = fetch(url, accept="application/vnd.pypi.simple.v1+json")
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            fail(refused(e))
        fail("cannot read the uv release list from %s/pypi/uv/json nor %s: %s" % (index, url, e))
    except Exception as e:
        fail("cannot read the uv release list from %s/pypi/uv/json nor %s: %s" % (index, url, e))
    try:
        data = json.loads(body)
    except ValueError:
        fail("%s did not answer with PEP 691 JSON; point PV_UV_INDEX_URL at a PyPI mirror with the JSON API" % url)
    files = []
    for f in data.get("files", []):
        fn = f["filename"]
        if fn.startswith("uv-%s-" % version):
            files.append((fn, urllib.parse.urljoin(final, f["url"]), (f.get("hashes") or {}).get("sha256"),
                          bool(f.get("yanked"))))
    source = url
    if not files:
        fail("uv %s is not on %s" % (version, url))

cands = [(score(fn), fn, url, sha) for fn, url, sha, yanked in files if score(fn) is not None]
if not cands:
    fail("no uv %s wheel for %s (%s %s) on %s" % (version, arch, "musl" if musl else "glibc", libc_ver, source))
cands.sort(reverse=True)
_, fn, url, sha = cands[0]
if not sha:
    fail("%s lists no sha256 for %s; refusing an unverified binary" % (source, fn))
sys.stderr.write("uv-venv: downloading %s\n" % fn)
try:
    body, _ = fetch(url)
except urllib.error.HTTPError as e:
    fail(refused(e) if e.code in (401, 403) else "cannot download %s: %s" % (fn, e))
got = hashlib.sha256(body).hexdigest()
if got != sha:
    fail("sha256 mismatch for %s: index says %s, download is %s" % (fn, sha, got))
sys.stderr.write("uv-venv: sha256 %s verified (%d bytes)\n" % (sha, len(body)))
whl = os.path.join(tmp, fn)
with open(whl, "wb") as f:
    f.write(body)
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if re.match(r"^uv-[^/]+\.data/scripts/uv$", n)]
    if not names:
        fail("%s has no uv-*.data/scripts/uv" % fn)
    with z.open(names[0]) as src, open(os.path.join(tmp, "uv"), "wb") as dst:
        dst.write(src.read())
os.chmod(os.path.join(tmp, "uv"), 0o755)
os.remove(whl)
PY
    die "no uv $UV_VERSION from $INDEX_URL (see above)"
  local got
  got=$("$tmp/uv" --version 2>&1) || die "the extracted uv does not run: $got"
  [[ $got =~ ^uv\ ${UV_VERSION//./\\.}([[:space:]]|$) ]] || die "the extracted uv reports '$got', not $UV_VERSION"
  txn_move_aside "$UV_DIR"
  txn_new_dir "$UV_DIR"
  mv -- "$tmp" "$UV_DIR"
  chmod 0755 "$UV_DIR"
  log "installed $got at $UV_BIN"
}

# uv at UV_VERSION (changed=1 when installed), and the uv version an earlier
# run of this step pinned removed unless another venv step still uses it.
ensure_uv() {
  if uv_ok; then
    log "uv $UV_VERSION already at $UV_BIN"
  else
    install_uv
    changed=1
  fi
  local old_uv
  old_uv=$(state_get uv_version)
  if [[ -n $old_uv && $old_uv != "$UV_VERSION" && -d $UV_ROOT/$old_uv ]] && ! uv_used_elsewhere "$old_uv"; then
    log "removing uv $old_uv (no longer used)"
    txn_move_aside "${UV_ROOT:?}/$old_uv"
    changed=1
  fi
}

# Sets WANT to the X.Y.Z of the interpreter PV_PYTHON resolves to (via uv, no
# downloads unless allowed). Not run in $(...), so that die() ends the script.
wanted_python() {
  local py err
  if [[ $PYTHON_SPEC == /* ]]; then
    py=$PYTHON_SPEC
    [[ -x $py ]] || die "PV_PYTHON '$py' is not an executable"
  else
    if ! py=$(UV_PYTHON_DOWNLOADS=$dl_mode "$UV_BIN" python find --no-project "$PYTHON_SPEC" 2>"$UV_ERR"); then
      err=$(tail -n 3 "$UV_ERR" | tr '\n' ' ')
      die "no Python matching '$PYTHON_SPEC' on this host (install it with apt, e.g. python3.11 through the toolchain step, or set PV_ALLOW_PYTHON_DOWNLOAD=1 to let uv download one); uv said: $err"
    fi
  fi
  WANT=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') || die "cannot run $py"
}

python_matches() { # have want
  local have=$1 want=$2 spec_parts
  spec_parts=$(tr -cd '.' <<<"$PYTHON_SPEC" | wc -c)
  if [[ $PYTHON_SPEC != /* ]] && (( spec_parts >= 2 )); then
    [[ $have == "$want" ]]
  else
    [[ ${have%.*} == "${want%.*}" ]]
  fi
}

for d in "$UV_ROOT" "$STATE_DIR" ${VENV:+"$(dirname "$VENV")"}; do writable_or_root "$d"; done
index_login_read

txn_begin uv-venv 1800

if [[ $ACTION == create && $UV_ONLY == 1 ]]; then
  command -v python3 >/dev/null || die "python3 is not installed (the toolchain step installs it)"
  changed=0
  ensure_uv
  if [[ $(state_get uv_version) != "$UV_VERSION" ]]; then write_state; fi
  txn_commit
  if (( changed )); then echo changed; else echo unchanged; fi
  exit 0
fi

if [[ $ACTION == create ]]; then
  [[ -n $PYTHON_SPEC ]] || die "PV_PYTHON is required (e.g. 3.11)"
  [[ $PYTHON_SPEC == /* || $PYTHON_SPEC =~ ^[0-9]+(\.[0-9]+){0,2}$ ]] || \
    die "PV_PYTHON must be a version like 3.11 or an absolute path, got '$PYTHON_SPEC'"
  command -v python3 >/dev/null || die "python3 is not installed (the toolchain step installs it)"
  changed=0
  ensure_uv
  dl_mode=never
  [[ $ALLOW_DL == 1 ]] && dl_mode=automatic
  UV_ERR=$(mktemp)
  wanted_python
  rm -f -- "$UV_ERR"
  want=$WANT
  have=$(venv_python_version)
  # Ownership: a venv this step has no record of is someone else's.
  ADOPTED=$(state_get adopted)
  if [[ ! -f $STATE && -f $VENV/pyvenv.cfg ]]; then
    [[ $ADOPT == 1 ]] || die "$VENV is a venv that pulumi-vllm did not make: refusing to take it over (destroy would delete it) -> choose another host.venvPath, or list 'venv' in host.adopt to use it (destroy then leaves it)"
    ADOPTED=1
    changed=1
    log "adopting the existing venv $VENV (PV_ADOPT=1): delete will leave it"
  fi
  if [[ $ADOPTED == 1 && -n $have ]] && ! python_matches "$have" "$want"; then
    die "the adopted venv $VENV has Python $have, not $want: it is not replaced -> set vllm.python to $have, or choose another host.venvPath"
  fi
  if [[ -n $have ]] && python_matches "$have" "$want"; then
    log "venv $VENV already has Python $have"
  else
    if [[ -e $VENV ]]; then
      if [[ -n $have ]]; then
        log "venv $VENV has Python $have, want $want: recreating it"
      elif [[ -f $VENV/pyvenv.cfg ]]; then
        log "venv $VENV is broken: recreating it"
      elif [[ -d $VENV && -z $(ls -A "$VENV") ]]; then
        :
      else
        die "$VENV exists and is not a venv; refusing to replace it"
      fi
      txn_move_aside "$VENV"
    fi
    txn_new_dir "$(dirname "$VENV")"
    txn_new_dir "$VENV"
    install -d -m 0755 "$(dirname "$VENV")"
    args=(venv --no-project --python "$PYTHON_SPEC" "$VENV")
    UV_PYTHON_DOWNLOADS=$dl_mode "$UV_BIN" "${args[@]}" >&2 || die "uv venv failed for Python $PYTHON_SPEC at $VENV"
    have=$(venv_python_version)
    [[ -n $have ]] || die "uv venv did not create a venv at $VENV"
    log "created venv $VENV with Python $have"
    changed=1
  fi
  if [[ $(state_get venv) != "$VENV" || $(state_get uv_version) != "$UV_VERSION" || $(state_get adopted) != "${ADOPTED:-0}" ]]; then
    write_state
  fi
  log "uv=$UV_BIN venv=$VENV python=$have"
  txn_commit
  if (( changed )); then echo changed; else echo unchanged; fi
  exit 0
fi

# delete
changed=0
if [[ $UV_ONLY == 1 ]]; then
  :
elif [[ $(state_get adopted) == 1 ]]; then
  log "$VENV was adopted: leaving it"
elif [[ -f $VENV/pyvenv.cfg ]]; then
  log "removing venv $VENV"
  rm -rf -- "$VENV"
  changed=1
elif [[ -e $VENV ]]; then
  log "$VENV is not a venv (no pyvenv.cfg); leaving it"
fi
# The uv this step pinned (state), else the one named by PV_UV_VERSION.
uv_version=$(state_get uv_version)
uv_version=${uv_version:-$UV_VERSION}
if [[ -d $UV_ROOT/$uv_version ]]; then
  if uv_used_elsewhere "$uv_version"; then
    log "keeping uv $uv_version: another venv step uses it"
  else
    log "removing uv $uv_version"
    rm -rf -- "${UV_ROOT:?}/$uv_version"
    changed=1
  fi
fi
if [[ -f $STATE ]]; then
  rm -f -- "$STATE"
  changed=1
fi
remove_empty_dirs
txn_commit
if (( changed )); then echo changed; else echo unchanged; fi
