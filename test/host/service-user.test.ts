// Host tier: vLLM's unit runs as its own system user under systemd's sandbox,
// on a real systemd (Debian bookworm sandbox). The stand-in (test/standin)
// records who it runs as and where it could write: it must be the service
// user, without capabilities, unable to write /etc, /opt, /usr, the venv or
// the steps' state, able to write its home and the model cache. The launch
// step makes the user, hands it the cache (what a root server of release
// 0.1.0 left there too), and delete takes it all back; a user it did not
// make is refused, or adopted and left.
import { bootSandbox, describeRun, fileTimer, freePort, runStep, Sandbox, shutdownSandbox, sshOk, sshRun } from "./sandbox";
import {
  DEFAULT_CACHE_DIR, envFilePath, expectStep, installStandin, launch, launchEnv, mainPid, readRecord, setupVenv,
  StandinUnitOpts, trustMachineCAs, VENV,
} from "../standin/fixtures";
import { serverHome } from "../../components/host/steps";

jest.setTimeout(600_000);
const timer = fileTimer("service-user.test.ts");
let sb: Sandbox;
const UNIT = "vllm-sec.service";
const HOME = serverHome(UNIT);
const secrets = { VLLM_API_KEY: `sk-sec-$(touch /tmp/pwned) "q" 'a'` };
let unit: StandinUnitOpts;

const userExists = async (u: string) => (await sshRun(sb, `id -u ${u}`)).code === 0;

beforeAll(async () => {
  sb = await bootSandbox("sec-user");
  timer.mark("boot");
  await trustMachineCAs(sb);
  await setupVenv(sb);
  await installStandin(sb, "0.11.0");
  timer.mark("venv + stand-in");
  unit = { unitName: UNIT, port: await freePort() };
});

afterAll(async () => {
  if (sb) await shutdownSandbox(sb);
  timer.done();
});

test("a server of release 0.1.0 ran as root and filled the cache as root: the launch step hands the cache to the new user", async () => {
  // what a root vLLM leaves in HF_HOME: directories, blobs, snapshot symlinks
  await sshOk(sb, `set -e; d=${DEFAULT_CACHE_DIR}/hub/models--o--m; mkdir -p $d/blobs $d/snapshots/abc; echo w >$d/blobs/b1; ln -s ../../blobs/b1 $d/snapshots/abc/model.safetensors`);
  expect(await userExists("vllm")).toBe(false);
  const r = await launch(sb, unit, secrets);
  expectStep(r, "changed");
  expect(r.stderr).toMatch(/made the system user vllm/);
  expect((await sshOk(sb, `find ${DEFAULT_CACHE_DIR} ! -user vllm | wc -l`)).trim()).toBe("0");
  // a symlink is given itself, its target stays where it points
  expect((await sshOk(sb, `stat -c %U ${DEFAULT_CACHE_DIR}/hub/models--o--m/snapshots/abc/model.safetensors`)).trim()).toBe("vllm");
  // a no-login system account
  const [, , uid, , , home, shell] = (await sshOk(sb, "getent passwd vllm")).trim().split(":");
  expect(Number(uid)).toBeLessThan(1000);
  expect(Number(uid)).toBeGreaterThan(0);
  expect(home).toBe(HOME);
  expect(shell).toBe("/usr/sbin/nologin");
  expect((await sshOk(sb, `stat -c '%a %U' ${HOME}`)).trim()).toBe("700 vllm");
  timer.mark("first launch");
});

test("the server runs as the service user, in the GPU groups, with no capability and no way to gain one", async () => {
  const pid = await mainPid(sb, UNIT);
  const rec = await readRecord(sb, UNIT, pid);
  expect(rec.identity.user).toBe("vllm");
  expect(rec.identity.uid).toBe(Number((await sshOk(sb, "id -u vllm")).trim()));
  expect(rec.identity.uid).not.toBe(0);
  const gpuGroups = (await sshOk(sb, "for g in video render; do if getent group $g >/dev/null; then echo $g; fi; done")).trim().split("\n").filter(Boolean);
  expect(gpuGroups).toContain("video"); // base-passwd's; render comes with udev rules for DRM (not in this minimal root)
  expect(rec.identity.groups).toEqual(expect.arrayContaining(gpuGroups));
  expect(rec.identity.capEff).toBe("0000000000000000");
  expect(rec.identity.capBnd).toBe("0000000000000000");
  expect(rec.identity.noNewPrivs).toBe("1");
  expect(rec.env.HOME).toBe(HOME);
  expect(rec.env.XDG_CACHE_HOME).toBe(`${HOME}/.cache`);
  // the secret still reaches it verbatim: systemd reads the root-only env file before dropping privileges
  expect(rec.env.VLLM_API_KEY).toBe(secrets.VLLM_API_KEY);
  expect((await sshOk(sb, `stat -c '%a %U:%G' ${envFilePath(UNIT)}`)).trim()).toBe("600 root:root");
  expect((await sshRun(sb, "test -e /tmp/pwned")).code).not.toBe(0);
});

test("it cannot write outside its home and the model cache: not /etc, /opt, /usr, the venv, the steps' state, nor home directories", async () => {
  const rec = await readRecord(sb, UNIT, await mainPid(sb, UNIT));
  const w = rec.writes;
  for (const p of ["/etc", "/opt", "/usr", "/usr/local", "/var/lib", "/var/lib/pulumi-vllm", VENV, `${VENV}/bin`]) {
    expect([p, w[p]]).toEqual([p, "EROFS"]); // ProtectSystem=strict: read-only whatever the modes
  }
  for (const p of ["/root", "/home"]) expect([p, w[p]]).toEqual([p, "EACCES"]); // ProtectHome=yes
  for (const p of [HOME, DEFAULT_CACHE_DIR, "/tmp", "/var/tmp", "/dev/shm"]) expect([p, w[p]]).toEqual([p, "ok"]);
  // its /tmp is its own (PrivateTmp=yes)
  expect((await sshOk(sb, `systemctl show -p PrivateTmp --value ${UNIT}`)).trim()).toBe("yes");
  // and without the sandbox the venv is still not its to change: root's, not writable by others
  expect((await sshRun(sb, `runuser -u vllm -- test -w ${VENV}/bin`)).code).not.toBe(0);
  // (uv leaves its lock file .lock 0666 in the venv: a lock, not code)
  expect((await sshRun(sb, `find ${VENV} -perm /o+w ! -type l ! -path ${VENV}/.lock | head -n 1`)).stdout.trim()).toBe("");
});

test("the same input again: unchanged, same PID", async () => {
  const pid = await mainPid(sb, UNIT);
  expectStep(await launch(sb, unit, secrets), "unchanged");
  expect(await mainPid(sb, UNIT)).toBe(pid);
});

test("a user that cannot run the server: refused with the fix, and the failed create takes back the user it made", async () => {
  const other: StandinUnitOpts = { unitName: "vllm-closed.service", port: await freePort(), serviceUser: "vllm-closed", cacheDir: "/srv/hf-closed" };
  // a venv behind a directory only root may enter
  await sshOk(sb, `install -d -m 0700 /opt/pv-closed && cp -a ${VENV} /opt/pv-closed/venv`);
  const env = launchEnv(other);
  env.PV_UNIT_CONTENT = env.PV_UNIT_CONTENT.replace(`ExecStart="${VENV}/bin/vllm"`, `ExecStart="/opt/pv-closed/venv/bin/vllm"`);
  const r = await runStep(sb, { step: "launch-unit", action: "create", env, stdin: `VLLM_API_KEY=k\n` });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/user vllm-closed cannot run \/opt\/pv-closed\/venv\/bin\/vllm: .* -> make the venv readable/);
  expect(r.stderr).toMatch(/rolled back/);
  expect(await userExists("vllm-closed")).toBe(false);
  expect((await sshRun(sb, "getent group vllm-closed")).code).not.toBe(0);
  expect((await sshRun(sb, `test -e ${serverHome("vllm-closed.service")}`)).code).not.toBe(0);
  expect((await sshRun(sb, "test -e /etc/systemd/system/vllm-closed.service")).code).not.toBe(0);
  expect((await sshRun(sb, "test -e /srv/hf-closed")).code).not.toBe(0);
  // the first server and its user are untouched
  expect(await userExists("vllm")).toBe(true);
  expect((await sshOk(sb, `systemctl is-active ${UNIT}`)).trim()).toBe("active");
  await sshOk(sb, "rm -rf /opt/pv-closed");
});

test("a user it did not make is refused; with PV_ADOPT_USER=1 it is used, and delete leaves it, out of the groups it was put in", async () => {
  const other: StandinUnitOpts = { unitName: "vllm-adopt.service", port: await freePort(), serviceUser: "alice", cacheDir: "/srv/hf-alice" };
  await sshOk(sb, "useradd --system --no-create-home alice");
  const groupsBefore = (await sshOk(sb, "id -nG alice")).trim();
  let r = await launch(sb, other, secrets);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/user alice already exists on this host and was not made by pulumi-vllm: .* -> choose another host\.serviceUser, or list 'user' in host\.adopt/);
  expect((await sshOk(sb, "id -nG alice")).trim()).toBe(groupsBefore);
  r = await launch(sb, other, secrets, { PV_ADOPT_USER: "1" });
  expectStep(r, "changed");
  expect((await readRecord(sb, other.unitName, await mainPid(sb, other.unitName))).identity.user).toBe("alice");
  const del = await runStep(sb, { step: "launch-unit", action: "delete", env: { PV_UNIT_NAME: other.unitName, PV_ENV_FILE: envFilePath(other.unitName) } });
  expectStep(del, "changed");
  expect(await userExists("alice")).toBe(true);
  expect((await sshOk(sb, "id -nG alice")).trim()).toBe(groupsBefore);
  // the cache it was given stays (weights are costly), handed back to root
  expect((await sshOk(sb, "stat -c %U /srv/hf-alice")).trim()).toBe("root");
});

test("a cache directory of another user is not taken over", async () => {
  await sshOk(sb, "install -d -o alice /srv/hf-of-alice");
  const r = await launch(sb, { unitName: "vllm-c.service", port: await freePort(), cacheDir: "/srv/hf-of-alice" }, secrets);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/\/srv\/hf-of-alice \(host\.cacheDir\) belongs to alice, neither root nor vllm: refusing to take it over -> choose another host\.cacheDir/);
  expect((await sshOk(sb, "stat -c %U /srv/hf-of-alice")).trim()).toBe("alice");
  expect((await sshOk(sb, `systemctl is-active ${UNIT}`)).trim()).toBe("active");
});

test("two servers share the user; deleting one keeps it, deleting the last removes it, and the cache goes back to root", async () => {
  const second: StandinUnitOpts = { unitName: "vllm-sec2.service", port: await freePort() };
  expectStep(await launch(sb, second, secrets), "changed");
  const del = (u: string) => runStep(sb, { step: "launch-unit", action: "delete", env: { PV_UNIT_NAME: u, PV_ENV_FILE: envFilePath(u) } });
  expectStep(await del(second.unitName), "changed");
  expect(await userExists("vllm")).toBe(true);
  expect((await sshOk(sb, `systemctl is-active ${UNIT}`)).trim()).toBe("active");
  expect((await sshRun(sb, `test -e ${serverHome(second.unitName)}`)).code).not.toBe(0);
  const r = await del(UNIT);
  expectStep(r, "changed");
  if (await userExists("vllm")) throw new Error(`the user is still there:\n${describeRun(r)}`);
  expect((await sshRun(sb, "getent group vllm")).code).not.toBe(0);
  expect((await sshRun(sb, `test -e ${HOME}`)).code).not.toBe(0);
  // the weights are kept, and no file is left to a uid a later account could get
  expect((await sshOk(sb, `find ${DEFAULT_CACHE_DIR} -nouser | wc -l`)).trim()).toBe("0");
  expect((await sshOk(sb, `cat ${DEFAULT_CACHE_DIR}/hub/models--o--m/blobs/b1`)).trim()).toBe("w");
  expect((await sshRun(sb, "ls /var/lib/pulumi-vllm/launch-unit/users 2>/dev/null")).stdout.trim()).toBe("");
});
