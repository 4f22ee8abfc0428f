import { renderUnit, quoteExecArg, quoteEnvironment, UnitSpec } from "../../components/host/render-unit";

// A small model of systemd's parsing of ExecStart= / Environment= values
// (extract_first_word with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE, then specifier
// expansion, then, for ExecStart only, $-expansion at exec time). Enough to
// prove the renderer's quoting round-trips; test/host/launch-unit.test.ts
// proves the same against real systemd.
function cUnescapeQuotedWords(s: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < s.length) {
    while (s[i] === " ") i++;
    if (i >= s.length) break;
    if (s[i] !== '"') throw new Error(`unquoted word at ${i}: ${s.slice(i)}`);
    i++;
    let w = "";
    for (;;) {
      if (i >= s.length) throw new Error("unterminated quote");
      const c = s[i];
      if (c === '"') { i++; break; }
      if (c === "\\") {
        const n = s[i + 1];
        if (n === "\\" || n === '"') { w += n; i += 2; }
        else if (n === "n") { w += "\n"; i += 2; }
        else if (n === "t") { w += "\t"; i += 2; }
        else if (n === "r") { w += "\r"; i += 2; }
        else if (n === "x") { w += String.fromCharCode(parseInt(s.slice(i + 2, i + 4), 16)); i += 4; }
        else throw new Error(`unknown escape \\${n}`);
        continue;
      }
      w += c;
      i++;
    }
    if (i < s.length && s[i] !== " ") throw new Error("garbage after closing quote");
    words.push(w);
  }
  return words;
}

function unSpecifier(w: string): string {
  return w.replace(/%(.)/g, (_m, c) => {
    if (c !== "%") throw new Error(`specifier %${c} would be expanded`);
    return "%";
  });
}

function unDollar(w: string): string {
  return w.replace(/\$(\$|\{?[A-Za-z_])/g, (_m, c) => {
    if (c !== "$") throw new Error(`$${c} would be expanded`);
    return "$";
  });
}

function execStartArgv(unit: string): string[] {
  const line = unit.split("\n").find((l) => l.startsWith("ExecStart="))!;
  return cUnescapeQuotedWords(line.slice("ExecStart=".length)).map(unSpecifier).map(unDollar);
}

function environmentOf(unit: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const l of unit.split("\n").filter((x) => x.startsWith("Environment="))) {
    const words = cUnescapeQuotedWords(l.slice("Environment=".length)).map(unSpecifier);
    expect(words).toHaveLength(1);
    const [k, ...rest] = words[0].split("=");
    env[k] = rest.join("=");
  }
  return env;
}

const base: UnitSpec = {
  unitName: "vllm.service",
  description: "vLLM server (Qwen/Qwen2.5-72B-Instruct-GPTQ-Int8)",
  execArgv: ["/opt/pulumi-vllm/venv/bin/vllm", "serve", "Qwen/Qwen2.5-72B-Instruct-GPTQ-Int8", "--port", "8000"],
  environment: { NCCL_P2P_DISABLE: "1", NCCL_IB_DISABLE: "1" },
  environmentFile: "/etc/pulumi-vllm/vllm.service.env",
  timeoutStartSec: 3600,
  restartSec: 30,
  startLimitBurst: 3,
  startLimitIntervalSec: 3600,
  oomScoreAdjust: 900,
};

describe("renderUnit", () => {
  test("with readWritePaths: the server's user and group, and the sandbox vLLM tolerates (no device restriction)", () => {
    const u = renderUnit({ ...base, user: "vllm", group: "vllm", readWritePaths: ["/var/lib/pulumi-vllm/home/vllm", "/var/cache/pulumi-vllm/huggingface"] });
    const service = u.split("[Service]")[1].split("[Install]")[0];
    for (const line of [
      "User=vllm", "Group=vllm", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes",
      "CapabilityBoundingSet=", "AmbientCapabilities=", "RestrictSUIDSGID=yes", "ProtectKernelTunables=yes",
      "ProtectKernelModules=yes", "ProtectControlGroups=yes", "LockPersonality=yes", "RestrictRealtime=yes",
      "ReadWritePaths=/var/lib/pulumi-vllm/home/vllm /var/cache/pulumi-vllm/huggingface",
      // the NVIDIA device nodes made as root before the sandboxed start, ignored where there is no such tool
      "ExecStartPre=-+/usr/bin/nvidia-modprobe -u -c=0",
    ]) expect(service.split("\n")).toContain(line);
    // GPUs (/dev/nvidia*, /dev/dri, /dev/kfd), /dev/shm for NCCL, W+X memory for JIT kernels, any syscall CUDA makes
    for (const d of ["PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock", "MemoryDenyWriteExecute", "SystemCallFilter", "PrivateIPC", "RemoveIPC", "PrivateNetwork", "RestrictAddressFamilies", "DynamicUser"]) {
      expect(u).not.toMatch(new RegExp(`^${d}=`, "m"));
    }
  });

  test("without readWritePaths: no sandbox (release 0.1.0's unit, as root)", () => {
    const u = renderUnit(base);
    expect(u).not.toMatch(/^(User|Group|ProtectSystem|NoNewPrivileges|ExecStartPre)=/m);
  });

  test("ProtectHome is read-only when the venv or a writable path is under a home directory, and % in paths is escaped", () => {
    expect(renderUnit({ ...base, user: "u", readWritePaths: ["/home/u/hf"] })).toMatch(/^ProtectHome=read-only$/m);
    expect(renderUnit({ ...base, execArgv: ["/root/venv/bin/vllm", "serve", "m"], user: "u", readWritePaths: ["/srv/hf"] })).toMatch(/^ProtectHome=read-only$/m);
    expect(renderUnit({ ...base, user: "u", readWritePaths: ["/srv/hf%1"] })).toMatch(/^ReadWritePaths=\/srv\/hf%%1$/m);
    expect(() => renderUnit({ ...base, user: "u", readWritePaths: ["relative"] })).toThrow(/absolute/);
    expect(() => renderUnit({ ...base, user: "u", group: "a b" })).toThrow(/group/);
  });

  test("renders a complete service unit", () => {
    const u = renderUnit({ ...base, after: ["earlyoom.service"], user: "vllm", workingDirectory: "/var/lib/vllm" });
    expect(u).toContain("[Unit]\n");
    expect(u).toContain("[Service]\n");
    expect(u).toContain("[Install]\nWantedBy=multi-user.target\n");
    expect(u).toMatch(/^Type=exec$/m);
    expect(u).toMatch(/^Restart=on-failure$/m);
    expect(u).toMatch(/^RestartSec=30$/m);
    expect(u).toMatch(/^StartLimitBurst=3$/m);
    expect(u).toMatch(/^StartLimitIntervalSec=3600$/m);
    expect(u).toMatch(/^TimeoutStartSec=3600$/m);
    expect(u).toMatch(/^TimeoutStopSec=120$/m);
    expect(u).toMatch(/^KillMode=mixed$/m);
    expect(u).toMatch(/^OOMScoreAdjust=900$/m);
    expect(u).toMatch(/^StandardOutput=journal$/m);
    expect(u).toMatch(/^StandardError=journal$/m);
    expect(u).toMatch(/^SyslogIdentifier=vllm$/m);
    expect(u).toMatch(/^EnvironmentFile=\/etc\/pulumi-vllm\/vllm\.service\.env$/m);
    expect(u).toMatch(/^User=vllm$/m);
    expect(u).toMatch(/^WorkingDirectory=\/var\/lib\/vllm$/m);
    expect(u).toMatch(/^After=network-online\.target earlyoom\.service$/m);
    expect(u).not.toMatch(/^LimitNOFILE=/m);
    expect(renderUnit({ ...base, limitNofile: 65536 })).toMatch(/^LimitNOFILE=65536$/m);
    // StartLimit* belong to [Unit] on current systemd
    const unitSection = u.split("[Service]")[0];
    expect(unitSection).toContain("StartLimitBurst=3");
    expect(execStartArgv(u)).toEqual(base.execArgv);
    expect(environmentOf(u)).toEqual(base.environment);
  });

  test("is deterministic (environment sorted) so an unchanged config leaves the file unchanged", () => {
    const a = renderUnit({ ...base, environment: { B: "2", A: "1" } });
    const b = renderUnit({ ...base, environment: { A: "1", B: "2" } });
    expect(a).toBe(b);
  });

  test("nasty argv round-trips through systemd quoting", () => {
    const nasty = [
      "/opt/my venv/bin/vllm",
      "serve",
      "org/model name with spaces",
      "--chat-template", "{% if x %}\"quoted\" and 'single'{% endif %}",
      "--x", "100%",
      "--y", "%n %i %%",
      "--z", "$HOME ${PATH} $$ $",
      "--w", "back\\slash \\n not a newline",
      "--real-newline", "line1\nline2\ttab",
      ";",
      "",
      "ünïcødé ✓",
      "--ctl", "\x01\x7f",
      "-@:+!",
    ];
    const u = renderUnit({ ...base, execArgv: nasty });
    expect(execStartArgv(u)).toEqual(nasty);
    // every word is quoted: a lone ; is never a command separator
    expect(u).not.toMatch(/ ; /);
    // no line of the unit is broken by an argument
    expect(u.split("\n").filter((l) => l.startsWith("ExecStart="))).toHaveLength(1);
  });

  test("quoteExecArg escapes %, $, quotes and backslashes", () => {
    expect(quoteExecArg("a b")).toBe('"a b"');
    expect(quoteExecArg("100%")).toBe('"100%%"');
    expect(quoteExecArg("$X")).toBe('"$$X"');
    expect(quoteExecArg('say "hi"')).toBe('"say \\"hi\\""');
    expect(quoteExecArg("a\\b")).toBe('"a\\\\b"');
    expect(quoteExecArg("")).toBe('""');
  });

  test("Environment= values: % escaped, $ kept (no $-expansion there)", () => {
    expect(quoteEnvironment("A", "100% $HOME")).toBe('"A=100%% $HOME"');
    const env = { A: "spaces and \"quotes\" 'single'", B: "50%", C: "$NOT_EXPANDED", D: "x=y=z", E: "back\\slash", F: "" };
    const u = renderUnit({ ...base, environment: env });
    expect(environmentOf(u)).toEqual(env);
  });

  test("% in description, working directory and env file path is escaped", () => {
    const u = renderUnit({ ...base, description: "100% vLLM", workingDirectory: "/srv/%x", environmentFile: "/etc/p%v.env" });
    expect(u).toMatch(/^Description=100%% vLLM$/m);
    expect(u).toMatch(/^WorkingDirectory=\/srv\/%%x$/m);
    expect(u).toMatch(/^EnvironmentFile=\/etc\/p%%v\.env$/m);
  });

  test("refuses secrets in argv or environment", () => {
    expect(() => renderUnit({ ...base, execArgv: [...base.execArgv, "--api-key", "sk-1"] })).toThrow(/--api-key would put a secret into argv/);
    expect(() => renderUnit({ ...base, execArgv: [...base.execArgv, "--api-key=sk-1"] })).toThrow(/--api-key/);
    expect(() => renderUnit({ ...base, execArgv: [...base.execArgv, "--hf-token", "hf_x"] })).toThrow(/--hf-token/);
    expect(() => renderUnit({ ...base, environment: { VLLM_API_KEY: "sk" } })).toThrow(/VLLM_API_KEY is a secret/);
    expect(() => renderUnit({ ...base, environment: { HF_TOKEN: "hf" } })).toThrow(/HF_TOKEN is a secret/);
  });

  test("refuses invalid input with a clear message", () => {
    expect(() => renderUnit({ ...base, unitName: "vllm" })).toThrow(/unitName/);
    expect(() => renderUnit({ ...base, unitName: "../x.service" })).toThrow(/unitName/);
    expect(() => renderUnit({ ...base, execArgv: [] })).toThrow(/execArgv is empty/);
    expect(() => renderUnit({ ...base, execArgv: ["vllm", "serve"] })).toThrow(/absolute path/);
    expect(() => renderUnit({ ...base, execArgv: ["-/bin/vllm"] })).toThrow(/absolute path/);
    expect(() => renderUnit({ ...base, execArgv: ["/bin/x", "a\0b"] })).toThrow(/NUL/);
    expect(() => renderUnit({ ...base, environment: { "BAD-NAME": "1" } })).toThrow(/not a valid variable name/);
    expect(() => renderUnit({ ...base, environmentFile: "relative.env" })).toThrow(/environmentFile must be an absolute path/);
    expect(() => renderUnit({ ...base, environmentFile: "/etc/with space.env" })).toThrow(/whitespace/);
    expect(() => renderUnit({ ...base, description: "two\nlines" })).toThrow(/one non-empty line/);
    expect(() => renderUnit({ ...base, oomScoreAdjust: 0 })).toThrow(/oomScoreAdjust/);
    expect(() => renderUnit({ ...base, oomScoreAdjust: -100 })).toThrow(/oomScoreAdjust/);
    expect(() => renderUnit({ ...base, oomScoreAdjust: 1001 })).toThrow(/oomScoreAdjust/);
    expect(() => renderUnit({ ...base, timeoutStartSec: 0 })).toThrow(/timeoutStartSec/);
    expect(() => renderUnit({ ...base, restartSec: 1.5 })).toThrow(/restartSec/);
    expect(() => renderUnit({ ...base, user: "root; rm -rf /" })).toThrow(/user/);
    expect(() => renderUnit({ ...base, after: ["not a unit"] })).toThrow(/after/);
    expect(() => renderUnit({ ...base, restartSec: 60, startLimitBurst: 5, startLimitIntervalSec: 100 })).toThrow(/start limit can never trigger/);
  });
});
