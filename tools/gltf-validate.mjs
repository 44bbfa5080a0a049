#!/usr/bin/env node
// Validate a glTF / GLB with the Khronos glTF validator and print its JSON report on stdout.
//
// usage: node tools/gltf-validate.mjs FILE|- [VALIDATOR_DIR]
//   FILE           the asset to validate; "-" reads it from stdin
//   VALIDATOR_DIR  the installed `gltf-validator` package; default <repo>/.cache/npm/node_modules/gltf-validator
// Install the package with: npm install --prefix .cache/npm gltf-validator@2.0.0-dev.3.10
// Exit status: 0 when the report has no errors, 1 when it has, 2 on a usage or load failure.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const [file, validatorDir] = process.argv.slice(2);
if (!file) {
  console.error("usage: node tools/gltf-validate.mjs FILE|- [VALIDATOR_DIR]");
  process.exit(2);
}
const packageDir = resolve(validatorDir ?? resolve(here, "..", ".cache", "npm", "node_modules", "gltf-validator"));

let validator;
try {
  validator = createRequire(resolve(packageDir, "package.json"))(packageDir);
} catch (error) {
  console.error(`cannot load gltf-validator from ${packageDir}: ${error.message}`);
  process.exit(2);
}

const bytes = new Uint8Array(readFileSync(file === "-" ? 0 : file));
try {
  const report = await validator.validateBytes(bytes, {
    uri: file === "-" ? "stdin.glb" : basename(file),
    maxIssues: 0, // report every issue
    externalResourceFunction: () => Promise.reject(new Error("external resources are not allowed")),
  });
  console.log(JSON.stringify(report, null, 2));
  process.exit(report.issues.numErrors > 0 ? 1 : 0);
} catch (error) {
  console.error(`validation failed: ${error}`);
  process.exit(2);
}
