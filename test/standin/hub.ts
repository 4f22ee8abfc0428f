// hub-standin: a TEST STAND-IN for the Hugging Face Hub (not the Hub).
//
// Tests cannot reach huggingface.co, and must not depend on it. This server
// answers the few endpoints that `huggingface_hub` (the `hf` CLI, vLLM's
// loader) and our planner's config fetch use, over plain HTTP on 127.0.0.1,
// for repositories a test writes as ordinary directories:
//
//   <root>/<org>/<name>/<file...>        one directory per model repository
//
// Point a client at it with HF_ENDPOINT=http://127.0.0.1:<port> (the variable
// huggingface_hub reads; our planner reads it too). Sandboxes share this
// machine's network namespace, so a host under test reaches it as well.
//
// Endpoints (the subset the clients call, with the Hub's own headers and
// error codes, so clients take the same code paths as against the Hub):
//   GET  /api/models/<repo>/revision/<rev>   repo_info: {id, sha, siblings}
//        (?blobs=true: each sibling with blobId and lfs {sha256, size})
//   GET  /api/models/<repo>                   same, for the default branch
//   GET  /api/models/<repo>/tree/<rev>[/<path>]  list_repo_tree (recursive)
//   HEAD|GET /<repo>/resolve/<rev>/<file>    file metadata / bytes; Range
//        requests are honoured (resumed downloads)
// Errors as the Hub sends them: 401 + X-Error-Code: GatedRepo for a gated repo
// without the right token, 404 + RepoNotFound / RevisionNotFound /
// EntryNotFound. Each response says what it is in `X-Hub-Standin: 1`.
//
// Knobs (HubOptions): gated repos and the token they accept, a delay before
// any answer (a slow hub), a byte rate for file bodies (so a test can
// interrupt a download mid-way), and a log of every request.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, IncomingMessage, Server, ServerResponse } from "node:http";
import { AddressInfo } from "node:net";
import { join, relative, sep } from "node:path";

export interface HubOptions {
  /** Directory holding one sub-directory per repository (`org/name`). */
  root: string;
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /** Repositories that answer 401 GatedRepo unless `Authorization: Bearer <token>` matches. */
  gated?: Record<string, string>;
  /** Milliseconds to wait before answering any request (a slow hub). */
  delayMs?: number;
  /** Bytes per second for file bodies; 0/undefined = unthrottled. */
  bytesPerSecond?: number;
}

export interface HubRequest {
  method: string;
  path: string;
  range?: string;
  authorized: boolean;
}

export interface StandinHub {
  /** Base URL for HF_ENDPOINT, e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  /** Every request served, in order. */
  requests: HubRequest[];
  /** The commit sha the hub reports for a repository's current files. */
  commitOf(repo: string): string;
  /** Change knobs while running (e.g. throttle a download, then lift it). */
  set(options: Partial<Omit<HubOptions, "root" | "port">>): void;
  close(): Promise<void>;
}

interface RepoFile {
  path: string; // relative, with "/" separators
  size: number;
  sha256: string;
  gitSha1: string;
}

function listFiles(dir: string): RepoFile[] {
  const out: RepoFile[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) {
        const bytes = new Uint8Array(readFileSync(full)); // a plain Uint8Array: @types/node 20.9 under TS 5.9 refuses a Buffer as BinaryLike
        out.push({
          path: relative(dir, full).split(sep).join("/"),
          size: bytes.length,
          sha256: createHash("sha256").update(bytes).digest("hex"),
          // git's blob id, what the Hub gives as the etag of a non-LFS file
          gitSha1: createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex"),
        });
      }
    }
  };
  walk(dir);
  return out;
}

// A deterministic commit id from the repository's contents: a test that
// changes a file sees a new "commit", as after a push to the Hub.
function commitFor(files: RepoFile[]): string {
  const h = createHash("sha1");
  for (const f of files) h.update(`${f.path}\0${f.sha256}\n`);
  return h.digest("hex");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startStandinHub(options: HubOptions): Promise<StandinHub> {
  const knobs = { gated: options.gated ?? {}, delayMs: options.delayMs ?? 0, bytesPerSecond: options.bytesPerSecond ?? 0 };
  const requests: HubRequest[] = [];
  const sockets = new Set<import("node:net").Socket>();

  const repoDir = (repo: string): string | undefined => {
    if (!/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(repo) || repo.includes("..")) return undefined;
    const dir = join(options.root, repo);
    try {
      return statSync(dir).isDirectory() ? dir : undefined;
    } catch {
      return undefined;
    }
  };

  const fail = (res: ServerResponse, status: number, code: string, message: string) => {
    res.writeHead(status, { "Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message, "X-Hub-Standin": "1" });
    res.end(JSON.stringify({ error: message }));
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://hub");
    const path = decodeURIComponent(url.pathname);
    const auth = req.headers.authorization ?? "";
    if (knobs.delayMs > 0) await sleep(knobs.delayMs);

    // Route: /api/models/<org>/<name>[/revision/<rev> | /tree/<rev>[/<path>]]
    let m = /^\/api\/models\/([^/]+\/[^/]+)(?:\/(revision|tree)\/([^/]+)(?:\/(.*))?)?$/.exec(path);
    let repo: string, rev: string, kind: string, file = "";
    if (m) {
      [repo, kind, rev] = [m[1], m[2] ?? "revision", m[3] ?? "main"];
      file = m[4] ?? "";
    } else if ((m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path))) {
      [repo, rev, file, kind] = [m[1], m[2], m[3], "resolve"];
    } else {
      requests.push({ method: req.method ?? "", path, authorized: false });
      return fail(res, 404, "RepoNotFound", `hub-standin: no route for ${path}`);
    }
    const token = knobs.gated[repo];
    const authorized = token === undefined || auth === `Bearer ${token}`;
    requests.push({ method: req.method ?? "", path, range: req.headers.range, authorized });

    const dir = repoDir(repo);
    if (!dir) return fail(res, 404, "RepoNotFound", `Repository Not Found for url: ${url.pathname}.`);
    if (!authorized)
      return fail(res, 401, "GatedRepo", `Access to model ${repo} is restricted. You must have access to it and be authenticated to access it. Please log in.`);
    const files = listFiles(dir);
    const sha = commitFor(files);
    if (rev !== "main" && rev !== sha) return fail(res, 404, "RevisionNotFound", `Invalid rev id: ${rev}`);

    const json = (body: unknown) => {
      res.writeHead(200, { "Content-Type": "application/json", "X-Repo-Commit": sha, "X-Hub-Standin": "1" });
      res.end(JSON.stringify(body));
    };
    if (kind === "revision") {
      return json({
        id: repo,
        modelId: repo,
        sha,
        private: false,
        gated: token === undefined ? false : "manual",
        // ?blobs=true (huggingface_hub's files_metadata=True) adds what the Hub adds: the blob id and
        // the LFS sha256 the weights step verifies downloads against.
        siblings: files.map((f) =>
          (url.searchParams.get("blobs") ?? "").toLowerCase() === "true" // requests sends True
            ? { rfilename: f.path, size: f.size, blobId: f.gitSha1, lfs: { sha256: f.sha256, size: f.size, pointerSize: 134 } }
            : { rfilename: f.path, size: f.size },
        ),
        usedStorage: files.reduce((n, f) => n + f.size, 0),
      });
    }
    if (kind === "tree") {
      const under = file.replace(/\/$/, "");
      return json(
        files
          .filter((f) => under === "" || f.path.startsWith(`${under}/`))
          .map((f) => ({ type: "file", oid: f.gitSha1, size: f.size, path: f.path, lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } })),
      );
    }

    // resolve
    const entry = files.find((f) => f.path === file);
    if (!entry) return fail(res, 404, "EntryNotFound", `Entry Not Found for url: ${url.pathname}.`);
    const bytes = readFileSync(join(dir, ...entry.path.split("/")));
    let start = 0;
    let end = bytes.length - 1;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const headers: Record<string, string | number> = {
      "Content-Type": "application/octet-stream",
      "Accept-Ranges": "bytes",
      "X-Repo-Commit": sha,
      ETag: `"${entry.sha256}"`,
      "X-Hub-Standin": "1",
    };
    let status = 200;
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), end) : end;
      if (start > end && bytes.length > 0) {
        res.writeHead(416, { ...headers, "Content-Range": `bytes */${bytes.length}` });
        return void res.end();
      }
      status = 206;
      headers["Content-Range"] = `bytes ${start}-${end}/${bytes.length}`;
    }
    headers["Content-Length"] = Math.max(0, end - start + 1);
    res.writeHead(status, headers);
    if (req.method === "HEAD") return void res.end();
    const body = bytes.subarray(start, end + 1);
    if (!knobs.bytesPerSecond) return void res.end(body);
    // Throttled: 10 chunks a second, so an interrupted download leaves a part.
    const chunk = Math.max(1, Math.floor(knobs.bytesPerSecond / 10));
    for (let off = 0; off < body.length; off += chunk) {
      if (res.destroyed) return;
      res.write(body.subarray(off, off + chunk));
      await sleep(100);
    }
    res.end();
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) fail(res, 500, "InternalError", String(e));
      else res.destroy();
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    commitOf: (repo) => {
      const dir = repoDir(repo);
      if (!dir) throw new Error(`hub-standin: no repository ${repo} under ${options.root}`);
      return commitFor(listFiles(dir));
    },
    set: (o) => Object.assign(knobs, Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// Run standalone: node -r ts-node/register/transpile-only test/standin/hub.ts --root DIR [--port N]
if (require.main === module) {
  const { parseArgs } = require("node:util") as typeof import("node:util");
  const { values } = parseArgs({ options: { root: { type: "string" }, port: { type: "string" } } });
  if (!values.root) {
    process.stderr.write("usage: hub.ts --root DIR [--port N]   (a TEST STAND-IN for the Hugging Face Hub)\n");
    process.exit(2);
  }
  startStandinHub({ root: values.root, port: Number(values.port ?? 0) }).then((hub) => {
    process.stdout.write(`hub-standin (NOT the Hugging Face Hub) serving ${values.root} at ${hub.url}\n`);
  });
}
