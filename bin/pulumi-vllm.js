#!/usr/bin/env node
// Entry of `npx pulumi-vllm`. From the package (npm install): the compiled CLI in dist/.
// From a source checkout: the TypeScript CLI through ts-node (transpile only: type checking
// is `npm run typecheck`'s job), so the CLI never runs a stale build.
const fs = require("fs");
const path = require("path");
const source = path.join(__dirname, "..", "components", "cli", "main.ts");
let main;
if (fs.existsSync(source)) {
  require("ts-node").register({ transpileOnly: true, compilerOptions: { module: "commonjs" } });
  ({ main } = require(source));
} else {
  ({ main } = require("../dist/components/cli/main.js"));
}
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err && err.message ? err.message : String(err));
    process.exit(1);
  },
);
