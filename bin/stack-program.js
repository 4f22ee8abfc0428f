// Entry of this repository's stack program (Pulumi.yaml `main`). Runs the
// compiled program (dist/index.js, from `npm run build`) when it is newer than
// every source file it is built from, so a `pulumi up` pays for no TypeScript
// compiler; otherwise compiles index.ts on the fly with ts-node (transpile
// only: type checking is `npm test`'s job), so an edit is never run stale.
const fs = require("fs");
const path = require("path");

const root = path.join(__dirname, "..");
// Relative paths in a stack file (connection.privateKeyPath, hostKeyPath,
// model.configPath) are relative to the project, where Pulumi.yaml is; the
// language host starts this entry in its own directory (bin/).
process.chdir(root);
const compiled = path.join(root, "dist", "index.js");

function newestSource() {
  let newest = fs.statSync(path.join(root, "index.ts")).mtimeMs;
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|json)$/.test(e.name)) newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  };
  walk(path.join(root, "src"));
  walk(path.join(root, "components"));
  return newest;
}

if (fs.existsSync(compiled) && fs.statSync(compiled).mtimeMs >= newestSource()) {
  module.exports = require(compiled);
} else {
  require("ts-node").register({ transpileOnly: true, project: path.join(root, "tsconfig.json") });
  module.exports = require(path.join(root, "index.ts"));
}
