// The releases the tier checks are the ones that matter: the oldest the flag
// table supports, every release an example stack pins, and the newest.
import history from "../../components/plan/data/vllm-flag-history.json";
import { compareVersions, MIN_SUPPORTED } from "../../components/plan/vllm-versions";
import { exampleStacks, RELEASES } from "./real-vllm";

const newest = Object.keys(history.meta.pypiReleaseDates).sort(compareVersions).pop()!;

test.each([
  ["the oldest the table supports", MIN_SUPPORTED],
  ["the newest the table covers", newest],
  ...exampleStacks().map((s) => [`pinned by ${s.id}`, s.version]),
])("test/vllm/releases.json lists %s (%s)", (_why, version) => {
  expect(RELEASES).toContain(version);
});

test("releases.json is sorted and has no duplicates", () => {
  expect([...new Set(RELEASES)].sort(compareVersions)).toEqual(RELEASES);
});
