// vLLM versions as PyPI numbers them (PEP 440), and the planner's version gates.
import { atLeast, compareVersions, isVllmVersion, NEWEST_CHECKED, releaseOf, versionWarnings } from "../../components/plan/version";
import { compareVersions as flagTableCompare, checkForVersion } from "../../components/plan/vllm-versions";
import { parseStackConfig } from "../../components/config/load";

describe("PEP 440 versions", () => {
  test("real vLLM release numbers are accepted", () => {
    for (const v of ["0.11.0", "0.10.1.1", "0.8.5.post1", "0.20.0rc1", "0.15.2rc1.dev93+g11a4c9d30"]) expect(isVllmVersion(v)).toBe(true);
    for (const v of ["banana", "v0.11.0", "0.11.0 ", ""]) expect(isVllmVersion(v)).toBe(false);
  });
  test("ordered as pip orders them, in the planner and in the flag table", () => {
    for (const cmp of [compareVersions, flagTableCompare]) {
      expect(cmp("0.10.1.1", "0.10.1")).toBeGreaterThan(0);
      expect(cmp("0.10.1.1", "0.10.2")).toBeLessThan(0);
      expect(cmp("0.8.5.post1", "0.8.5")).toBeGreaterThan(0);
      expect(cmp("0.8.5.post1", "0.9.0")).toBeLessThan(0);
      expect(cmp("0.20.0rc1", "0.20.0")).toBeLessThan(0);
      expect(cmp("0.10.0", "0.9.2")).toBeGreaterThan(0);
    }
  });
  test("an invalid version is a clear error, not NaN arithmetic", () => {
    expect(() => compareVersions("banana", "0.11.0")).toThrow(/vllm.version: "banana" is not a version .* -> use a release like/);
  });
  test("behaviour gates: an rc or post release of X behaves as X", () => {
    expect(releaseOf("0.8.5.post1")).toBe("0.8.5");
    expect(atLeast("0.20.0rc1", "0.20.0")).toBe(true);
    expect(atLeast("0.19.1", "0.20.0")).toBe(false);
    expect(atLeast("0.10.1.1", "0.10.1")).toBe(true);
  });
  test("a pin newer than the checked tables warns, a checked one does not", () => {
    expect(versionWarnings(NEWEST_CHECKED)).toEqual([]);
    expect(versionWarnings("0.34.0").join()).toMatch(/newer than 0\.33\.0/);
    expect(versionWarnings("0.29.1rc1.dev17+gd2d649e67").join()).toMatch(/development build/);
  });
  test("the flag table checks a four-part release", () => {
    expect(checkForVersion("0.10.1.1", [{ flag: "--swap-space", where: "x" }], [])).toEqual([]);
    expect(checkForVersion("0.18.0.post1", [{ flag: "--swap-space", where: "x" }], []).join()).toMatch(/removed/);
  });
});

describe("the stack config takes PEP 440 pins", () => {
  const base = {
    topology: "single",
    connection: { host: "h", privateKeyPath: "k", insecureSkipHostKeyCheck: true },
    hardware: { gpuCount: 1, gpuMemoryGiB: 24, hostRamGiB: 64, freeDiskGiB: 500 },
    model: { id: "meta-llama/Llama-3.1-8B-Instruct" },
  };
  test.each(["0.10.1.1", "0.8.5.post1", "0.20.0rc1"])("%s", (version) => {
    expect(parseStackConfig({ ...base, vllm: { version } }, "t").config.vllm.version).toBe(version);
  });
  test("a bad pin names the key and the fix", () => {
    expect(() => parseStackConfig({ ...base, vllm: { version: "latest" } }, "t")).toThrow(/vllm.version.*0\.10\.1\.1/s);
  });
});
