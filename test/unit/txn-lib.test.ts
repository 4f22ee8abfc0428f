// The host steps' shared library (components/host/scripts/lib/txn.sh), run
// with this machine's bash on a temporary directory: the journal and its
// rollback, bounded output lines and the time limit. Every step script
// includes it (remote-command.test.ts checks that), so these are the
// guarantees each step inherits; the host tier checks them step by step on a
// real host.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const LIB = path.join(__dirname, "..", "..", "components", "host", "scripts", "lib", "txn.sh");

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "pv-txn-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs `body` after the library is sourced, in `dir`, with PV_STATE_DIR=dir/state. */
function step(body: string, env: Record<string, string> = {}, timeoutMs = 20000) {
  const script = `set -euo pipefail\n. ${JSON.stringify(LIB)}\ncd ${JSON.stringify(dir)}\n${body}\n`;
  const r = spawnSync("bash", ["-c", script, "pv-test"], {
    encoding: "utf8",
    // stdin from /dev/null: bash reads ~/.bashrc when stdin is a socket (as node's pipes are)
    stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", PV_STATE_DIR: path.join(dir, "state"), ...env },
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

const read = (f: string) => fs.readFileSync(path.join(dir, f), "utf8");
const exists = (f: string) => fs.existsSync(path.join(dir, f));

describe("journal and rollback", () => {
  it("a failed run puts back files it changed, removes what it created, runs undo commands newest first", () => {
    fs.writeFileSync(path.join(dir, "conf"), "old\n", { mode: 0o640 });
    const r = step(`
      txn_begin demo 0
      txn_undo sh -c 'echo first-registered >>undo.log'
      txn_save conf new.txt
      txn_new_dir newdir
      echo new >conf; chmod 600 conf
      echo created >new.txt
      mkdir -p newdir/sub
      txn_undo sh -c 'echo last-registered >>undo.log'
      false`);
    expect(r.code).toBe(1);
    expect(read("conf")).toBe("old\n");
    expect(fs.statSync(path.join(dir, "conf")).mode & 0o777).toBe(0o640);
    expect(exists("new.txt")).toBe(false);
    expect(exists("newdir")).toBe(false);
    expect(read("undo.log")).toBe("last-registered\nfirst-registered\n");
    expect(r.stderr).toMatch(/demo: failed \(status 1\): undoing what this run changed/);
    expect(r.stderr).toMatch(/rolled back/);
    // the journal is gone once rolled back
    expect(exists("state")).toBe(false);
  });

  it("a committed run keeps its changes and leaves no journal", () => {
    fs.writeFileSync(path.join(dir, "conf"), "old\n");
    const r = step(`
      txn_begin demo 0
      txn_save conf
      echo new >conf
      txn_commit
      echo changed`);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("changed\n");
    expect(read("conf")).toBe("new\n");
    expect(exists("state")).toBe(false);
  });

  it("a run that changes nothing writes nothing to disk and needs no commit", () => {
    const r = step(`txn_begin demo 0\necho unchanged`);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("unchanged\n");
    expect(exists("state")).toBe(false);
  });

  it("a run that changed something but exits 0 without committing is a failure and is rolled back", () => {
    fs.writeFileSync(path.join(dir, "conf"), "old\n");
    const r = step(`txn_begin demo 0\ntxn_save conf\necho new >conf\nexit 0`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ended without committing/);
    expect(read("conf")).toBe("old\n");
  });

  it("something moved aside comes back on failure and is deleted on commit", () => {
    fs.mkdirSync(path.join(dir, "venv"));
    fs.writeFileSync(path.join(dir, "venv", "marker"), "old venv");
    let r = step(`txn_begin demo 0\ntxn_move_aside venv\ntxn_new_dir venv\nmkdir venv\nfalse`);
    expect(r.code).toBe(1);
    expect(read("venv/marker")).toBe("old venv");
    expect(fs.readdirSync(dir).sort()).toEqual(["venv"]);
    r = step(`txn_begin demo 0\ntxn_move_aside venv\nmkdir venv\ntxn_commit`);
    expect(r.code).toBe(0);
    expect(fs.readdirSync(dir).sort()).toEqual(["venv"]);
    expect(fs.readdirSync(path.join(dir, "venv"))).toEqual([]);
  });

  it("undo arguments with quotes, spaces, newlines and $(...) reach the command verbatim (never evaluated)", () => {
    const tricky = `a b'c"d $(touch pwned) \`touch pwned2\` ;\nnext line`;
    const r = step(`txn_begin demo 0\nrecord() { printf '%s' "$1" >got; }\ntxn_undo record "$TRICKY"\nfalse`, { TRICKY: tricky });
    expect(r.code).toBe(1);
    expect(read("got")).toBe(tricky);
    expect(exists("pwned")).toBe(false);
    expect(exists("pwned2")).toBe(false);
  });

  it("a run killed before it could roll back is rolled back by the next run of the step", () => {
    fs.writeFileSync(path.join(dir, "conf"), "old\n");
    const killed = step(`txn_begin demo 0\ntxn_save conf\necho half-written >conf\nkill -KILL $$`);
    expect(killed.signal ?? killed.code).toBeTruthy();
    expect(read("conf")).toBe("half-written\n");
    const next = step(`txn_begin demo 0\necho unchanged`);
    expect(next.code).toBe(0);
    expect(next.stderr).toMatch(/an earlier run was stopped before it could roll back/);
    expect(read("conf")).toBe("old\n");
    expect(exists("state")).toBe(false);
  });

  it("an interrupted run (SIGTERM) is rolled back", () => {
    fs.writeFileSync(path.join(dir, "conf"), "old\n");
    const r = step(`txn_begin demo 0\ntxn_save conf\necho new >conf\nkill -TERM $$\nsleep 5`);
    expect(r.code).toBe(143);
    expect(read("conf")).toBe("old\n");
  });
});

describe("bounded output", () => {
  it("cuts a 100,000-character line and keeps the last redraw of a \\r progress line", () => {
    const r = step(`txn_begin demo 0
      head -c 100000 /dev/zero | tr '\\0' x; echo
      printf '10%%\\r50%%\\r100%%\\n'
      printf 'é%.0s' $(seq 5000) >&2; echo >&2
      echo unchanged`);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toBe("x".repeat(4000) + " [line cut at 4000 characters]");
    expect(lines[1]).toBe("100%");
    expect(lines[lines.length - 2]).toBe("unchanged");
    // cut by characters, not bytes: no broken UTF-8 sequence
    expect(r.stderr.split("\n")[0]).toBe("é".repeat(4000) + " [line cut at 4000 characters]");
    for (const l of [...lines, ...r.stderr.split("\n")]) expect(l.length).toBeLessThan(4100);
  });

  it("PV_LINE_MAX sets the cut", () => {
    const r = step(`txn_begin demo 0\nhead -c 500 /dev/zero | tr '\\0' y; echo`, { PV_LINE_MAX: "100" });
    expect(r.stdout).toBe("y".repeat(100) + " [line cut at 100 characters]\n");
  });
});

describe("time limit", () => {
  it("a step that ends leaves no process holding its output open (the SSH session ends), even without procps", () => {
    // a PATH without pgrep/pkill/ps, as on a minimal host
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    for (const d of ["/usr/bin", "/bin"]) {
      for (const f of fs.readdirSync(d)) {
        if (/^(pgrep|pkill|ps|pidof|pwait|skill|snice)$/.test(f) || fs.existsSync(path.join(bin, f))) continue;
        fs.symlinkSync(path.join(d, f), path.join(bin, f));
      }
    }
    const start = Date.now();
    const r = step(`txn_begin demo 600\necho unchanged`, { PATH: bin });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("unchanged\n");
    // spawnSync returns only when every holder of stdout/stderr has closed them
    expect(Date.now() - start).toBeLessThan(10000);
  });

  it("stops a step that runs past its limit, and rolls it back", () => {
    fs.writeFileSync(path.join(dir, "conf"), "old\n");
    const start = Date.now();
    const r = step(`txn_begin demo 2\ntxn_save conf\necho new >conf\nsleep 30\ntxn_commit`);
    const ms = Date.now() - start;
    expect(r.code).toBe(143);
    expect(ms).toBeLessThan(15000);
    expect(r.stderr).toMatch(/time limit of 2s reached/);
    expect(read("conf")).toBe("old\n");
  });

  it("PV_STEP_TIMEOUT overrides the step's own limit", () => {
    const r = step(`txn_begin demo 600\nsleep 30`, { PV_STEP_TIMEOUT: "1" });
    expect(r.code).toBe(143);
    expect(r.stderr).toMatch(/time limit of 1s reached/);
  });
});
