// Test tiers: unit (fast, pure + Pulumi mocks), host (real systemd host over SSH),
// e2e (real Pulumi engine), slurm (real SLURM), vllm (real vLLM releases' parsers).
// Each tier has its own npm script.
const tier = (name, extra = {}) => ({
  displayName: name,
  preset: "ts-jest",
  testEnvironment: "node",
  testMatch: [`<rootDir>/test/${name}/**/*.test.ts`],
  transform: { "^.+\\.ts$": ["ts-jest", {}] },
  ...extra,
});
module.exports = {
  projects: [tier("unit"), tier("host"), tier("e2e"), tier("slurm"), tier("vllm")],
};
