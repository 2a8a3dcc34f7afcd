// Checks Kubernetes objects against the schemas of their kind, offline.
//
//   node validate-schemas.mjs TOOLS_DIR FILE.yaml...
//
// TOOLS_DIR holds node_modules with kubernetes-models (validators generated from the official
// Kubernetes OpenAPI schemas), @kubernetes-models/keda and @kubernetes-models/prometheus-operator
// (generated from those projects' CRDs) and yaml; tests/prerequisites.sh installs them. Prints one
// line per object ("ok KIND NAME" or "invalid KIND NAME: problems") and exits 1 if any is invalid
// or of a kind with no schema here.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [toolsDir, ...files] = process.argv.slice(2);
if (!toolsDir || files.length === 0) {
  console.error("usage: node validate-schemas.mjs TOOLS_DIR FILE.yaml...");
  process.exit(2);
}

const modules = join(toolsDir, "node_modules");
const { parseAllDocuments } = await import(pathToFileURL(join(modules, "yaml", "dist", "index.js")).href);

// apiVersion and kind → the module that models them (the ES module build where a package has both).
function modelPath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const folder =
    group === "keda.sh" ? join(modules, "@kubernetes-models", "keda", group, version)
    : group === "monitoring.coreos.com" ? join(modules, "@kubernetes-models", "prometheus-operator", group, version)
    : group === "" ? join(modules, "kubernetes-models", version)
    : join(modules, "kubernetes-models", group, version);
  const esm = join(folder, `${kind}.mjs`);
  return existsSync(esm) ? esm : join(folder, `${kind}.js`);
}

// API versions Kubernetes 1.27 and later no longer serve (the package still models them).
const removed = new Set([
  "extensions/v1beta1", "policy/v1beta1", "autoscaling/v2beta1", "autoscaling/v2beta2", "batch/v1beta1",
  "networking.k8s.io/v1beta1", "discovery.k8s.io/v1beta1", "storage.k8s.io/v1beta1", "events.k8s.io/v1beta1",
  "flowcontrol.apiserver.k8s.io/v1beta1", "flowcontrol.apiserver.k8s.io/v1beta2", "rbac.authorization.k8s.io/v1beta1",
]);

let bad = 0;
let count = 0;
for (const file of files) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length > 0) {
      console.log(`invalid ${file}: not YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
      bad++;
      continue;
    }
    const object = doc.toJS();
    if (object === null || object === undefined) continue;
    count++;
    const { apiVersion, kind } = object;
    const name = object.metadata?.name ?? "(no name)";
    if (typeof apiVersion !== "string" || typeof kind !== "string") {
      console.log(`invalid ${file} ${name}: apiVersion and kind are required`);
      bad++;
      continue;
    }
    if (removed.has(apiVersion)) {
      console.log(`invalid ${kind} ${name}: ${apiVersion} is no longer served by Kubernetes 1.27 and later`);
      bad++;
      continue;
    }
    let Model;
    try {
      Model = (await import(pathToFileURL(modelPath(apiVersion, kind)).href))[kind];
    } catch {
      console.log(`invalid ${kind} ${name}: no schema for ${apiVersion} ${kind} (an API this Kubernetes version does not serve?)`);
      bad++;
      continue;
    }
    try {
      new Model(object).validate();
      console.log(`ok ${kind} ${name}`);
    } catch (e) {
      console.log(`invalid ${kind} ${name}: ${e.message}`);
      bad++;
    }
  }
}
console.log(`${count} objects, ${bad} invalid`);
process.exit(bad === 0 && count > 0 ? 0 : 1);
