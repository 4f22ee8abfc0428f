// What `npm pack` ships and what importing the package does: only the library,
// the CLI, the step scripts and the docs; an import outside any Pulumi program
// runs nothing (the stack program, index.ts, is not the package's entry).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

const root = path.join(__dirname, "..", "..");
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));

test("the tarball: dist, the step scripts, the CLI, README and LICENSE; no tests, Go sources or stack files", () => {
  // --ignore-scripts: no build here, so dist/ may be absent; the rules are what is checked
  const [report] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
  const files: string[] = report.files.map((f: { path: string }) => f.path);
  // every step script and every library they include (readStepScript inlines lib/*.sh)
  const scripts = (fs.readdirSync(path.join(root, "components/host/scripts"), { recursive: true }) as string[]).filter((f) => f.endsWith(".sh"));
  expect(scripts.length).toBeGreaterThan(9);
  for (const script of scripts) expect(files).toContain(`components/host/scripts/${script}`);
  expect(files).toEqual(expect.arrayContaining(["bin/pulumi-vllm.js", "README.md", "LICENSE", "package.json"]));
  const stray = files.filter((f) => !f.startsWith("dist/") && !f.startsWith("components/host/scripts/") && !["bin/pulumi-vllm.js", "README.md", "LICENSE", "package.json"].includes(f));
  expect(stray).toEqual([]);
  expect(files.filter((f) => /\.go$|^test\/|Pulumi\..*\.yaml$|\.map$/.test(f))).toEqual([]);
});

test("main, types and exports point at the compiled entry of src/index.ts", () => {
  expect(pkg.main).toBe("dist/src/index.js");
  expect(pkg.types).toBe("dist/src/index.d.ts");
  expect(pkg.exports["."]).toEqual({ types: "./dist/src/index.d.ts", default: "./dist/src/index.js" });
  expect(pkg.peerDependencies["@pulumi/pulumi"]).toMatch(/^\^3\./);
});

test("importing the library outside a Pulumi program has no side effect and exports the API by name", () => {
  const out = execFileSync(
    process.execPath,
    ["-r", "ts-node/register/transpile-only", "-e", 'const m = require("./src"); console.log(JSON.stringify(Object.keys(m).sort()))'],
    { cwd: root, encoding: "utf8", env: { ...process.env, PULUMI_CONFIG: "", PULUMI_MONITOR: "", PULUMI_ENGINE: "" } },
  );
  expect(JSON.parse(out)).toEqual(
    ["VllmServer", "VllmSlurmServer", "planVllmServer", "planVllmSlurmServer", "planSummary", "ServerArgsError", "argsOfStackConfig", "stackServerArgs", "stackServerArgsWithHub", "orRunError", "definedOutputs", "withHubModel", "fetchHubModel", "hubSettings", "HubError", "checkpointBytesOf"].sort(),
  );
});
