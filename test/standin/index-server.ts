// STAND-IN for a private package index (a corporate PyPI mirror behind a
// login), run on the test machine: the sandboxes share its network, so they
// reach it at http(s)://127.0.0.1:<port> (https with `tls` from standinTls(),
// whose CA the sandbox must trust). It serves the wheels of one
// directory as a simple index (PEP 503 HTML, or PEP 691 JSON when asked) and
// answers nothing without the right HTTP Basic login. Not a mirror of PyPI:
// only what the tests put in the directory, nothing cached, no upload.
//
//   const idx = await startIndex({ dir, user, password, delayMs });
//   idx.url            -> http://127.0.0.1:<port>/simple
//   idx.requests       -> { path, auth: "ok" | "none" | "wrong" } per request
//   idx.setLogin(user, password)   (a rotated login)
//   await idx.close()
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as os from "os";
import * as path from "path";

export interface IndexRequest {
  path: string;
  auth: "ok" | "none" | "wrong";
}

export interface StandinIndex {
  url: string;
  port: number;
  requests: IndexRequest[];
  /** A rotated login: only this one is accepted from now on. */
  setLogin(user: string, password: string): void;
  close(): Promise<void>;
}

/** PEP 503 name normalization. */
const normalize = (name: string) => name.toLowerCase().replace(/[-_.]+/g, "-");
const projectOf = (wheel: string) => normalize(wheel.split("-")[0]);
const read = (file: string) => new Uint8Array(fs.readFileSync(file));
const sha256 = (file: string) => createHash("sha256").update(read(file)).digest("hex");

/** `tls`: serve https with this key and certificate (standinTls makes a pair and the CA the host must trust). */
export async function startIndex(o: { dir: string; user: string; password: string; delayMs?: number; tls?: { key: string; cert: string } }): Promise<StandinIndex> {
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
  let expected = basic(o.user, o.password);
  const requests: IndexRequest[] = [];
  const wheels = () => fs.readdirSync(o.dir).filter((f) => f.endsWith(".whl"));
  const handler: http.RequestListener = (req, res) => {
    const p = decodeURIComponent((req.url ?? "/").split("?")[0]);
    const given = req.headers.authorization;
    const auth = given === undefined ? "none" : given === expected ? "ok" : "wrong";
    requests.push({ path: p, auth });
    const send = (code: number, type: string, body: string | Uint8Array, extra: Record<string, string> = {}) => {
      setTimeout(() => {
        res.writeHead(code, { "Content-Type": type, "Content-Length": String(Buffer.byteLength(body)), ...extra });
        res.end(body);
      }, code === 200 ? (o.delayMs ?? 0) : 0);
    };
    if (auth !== "ok") return send(401, "text/plain", "401 login required\n", { "WWW-Authenticate": 'Basic realm="pv-standin-index"' });
    const m = /^\/simple\/([^/]+)\/$/.exec(p);
    if (p === "/simple/") {
      const names = [...new Set(wheels().map(projectOf))].sort();
      return send(200, "text/html", `<!DOCTYPE html><html><body>${names.map((n) => `<a href="${n}/">${n}</a>`).join("\n")}</body></html>\n`);
    }
    if (m) {
      const files = wheels().filter((f) => projectOf(f) === normalize(m[1]));
      if (!files.length) return send(404, "text/plain", "404 no such project\n");
      if ((req.headers.accept ?? "").includes("application/vnd.pypi.simple.v1+json")) {
        const body = { meta: { "api-version": "1.0" }, name: normalize(m[1]), files: files.map((f) => ({ filename: f, url: `../../files/${f}`, hashes: { sha256: sha256(path.join(o.dir, f)) } })) };
        return send(200, "application/vnd.pypi.simple.v1+json", JSON.stringify(body));
      }
      const links = files.map((f) => `<a href="../../files/${f}#sha256=${sha256(path.join(o.dir, f))}">${f}</a>`);
      return send(200, "text/html", `<!DOCTYPE html><html><body>\n${links.join("<br/>\n")}\n</body></html>\n`);
    }
    const f = /^\/files\/([^/]+\.whl)$/.exec(p);
    if (f && wheels().includes(f[1])) return send(200, "application/octet-stream", read(path.join(o.dir, f[1])));
    return send(404, "text/plain", "404\n");
  };
  const server = o.tls ? https.createServer({ key: o.tls.key, cert: o.tls.cert }, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `${o.tls ? "https" : "http"}://127.0.0.1:${port}/simple`,
    port,
    requests,
    setLogin: (user, password) => {
      expected = basic(user, password);
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * The uv wheel for this machine at `version`, fetched once from PyPI (sha256-checked) into a cache on the test
 * machine, copied into `dir`: what the stand-in index serves to the uv-venv step.
 */
export function fetchUvWheel(version: string, dir: string): string {
  const cache = path.join(os.tmpdir(), "pv-standin-index-cache");
  fs.mkdirSync(cache, { recursive: true });
  const py = `
import hashlib, json, os, platform, sys, urllib.parse, urllib.request
version, cache = sys.argv[1], sys.argv[2]
arch = platform.machine()
idx = "https://pypi.org/pypi/uv/json"
rel = json.load(urllib.request.urlopen(idx, timeout=60))["releases"][version]
f = [f for f in rel if f["filename"].endswith("manylinux_2_17_%s.manylinux2014_%s.whl" % (arch, arch))][0]
out = os.path.join(cache, f["filename"])
if not os.path.exists(out) or hashlib.sha256(open(out, "rb").read()).hexdigest() != f["digests"]["sha256"]:
    body = urllib.request.urlopen(urllib.parse.urljoin(idx, f["url"]), timeout=300).read()
    if hashlib.sha256(body).hexdigest() != f["digests"]["sha256"]:
        sys.exit("sha256 mismatch for " + f["filename"])
    open(out + ".tmp", "wb").write(body)
    os.replace(out + ".tmp", out)
print(out)
`;
  const r = spawnSync("python3", ["-c", py, version, cache], { encoding: "utf8", timeout: 600_000 });
  if (r.status !== 0) throw new Error(`fetching the uv ${version} wheel failed: ${r.stderr}`);
  const file = r.stdout.trim();
  fs.copyFileSync(file, path.join(dir, path.basename(file)));
  return path.basename(file);
}

/** A throw-away CA and a certificate it signed for 127.0.0.1 (openssl on the test machine), as PEM text. */
export function standinTls(): { ca: string; key: string; cert: string } {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "pv-standin-tls-"));
  const sh = `set -e; cd ${d}
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=pulumi-vllm stand-in index CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext
openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile ext 2>/dev/null`;
  const r = spawnSync("bash", ["-c", sh], { encoding: "utf8" });
  try {
    if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
    const read = (f: string) => fs.readFileSync(path.join(d, f), "utf8");
    return { ca: read("ca.crt"), key: read("srv.key"), cert: read("srv.crt") };
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
}
