#!/usr/bin/env node
// Entry of `npx pulumi-vllm`: runs the TypeScript CLI through ts-node
// (transpile only: type checking is `npm run typecheck`'s job, not every start's).
require("ts-node").register({ transpileOnly: true, compilerOptions: { module: "commonjs" } });
const { main } = require("../components/cli/main");
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err && err.message ? err.message : String(err));
    process.exit(1);
  },
);
