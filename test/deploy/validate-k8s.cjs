#!/usr/bin/env node
// Validates Kubernetes manifests offline against the Kubernetes 1.27 API schemas that the
// kubernetes-models package ships (generated from the upstream OpenAPI spec), in strict mode.
//
// Only stable (GA) API versions are accepted (see schemaIdFor).
//
//   node validate-k8s.cjs FILE...    one JSON line per YAML document on stdout:
//                                    {"file","index","kind","name","ok","errors":[...]}
//                                    exit status 1 when any document is invalid
//
// Why strict: the upstream schemas leave additionalProperties open, so a misspelt field
// (`replica:`, `readinessprobe:`) would pass and then be silently dropped by the API server
// (or refused by its strict field validation). Like kubeconform's -strict, every object schema
// that declares properties is closed here, so an unknown field is an error.
//
// How the schemas are reached: kubernetes-models registers each schema (plain JSON Schema with
// $ref ids such as "io.k8s.api.apps.v1.Deployment") through @kubernetes-models/validate's
// register(); we take that call over to collect them, then compile them with our own ajv.
"use strict";

const fs = require("fs");
const yaml = require("js-yaml");
const Ajv = require("ajv");
const addFormats = require("ajv-formats");
const addFormatsDraft2019 = require("ajv-formats-draft2019");
const kmValidate = require("@kubernetes-models/validate");

const schemas = new Map();
kmValidate.register = (id, schema) => {
  if (!schemas.has(id)) schemas.set(id, schema);
};
const { Model } = require("@kubernetes-models/base");

// The options and formats are the ones @kubernetes-models/validate uses for these schemas.
const ajv = new Ajv({ strictTypes: false, allErrors: true, verbose: true });
addFormats(ajv);
addFormatsDraft2019(ajv);
ajv.addFormat("byte", /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/);
// Kubernetes resource.Quantity: a signed decimal with an optional SI / binary-SI / exponent suffix.
ajv.addFormat("quantity", /^[+-]?(?:\d+|\d+\.\d+|\d+\.|\.\d+)(?:[KMGTPE]i|[YZEPTGMkhdcmunpfazy]|da|[eE][+-]?(?:\d+|\d+\.\d+|\d+\.|\.\d+))?$/);
ajv.addFormat("string", { type: "string", validate: () => true });

function closeObjects(node) {
  if (Array.isArray(node)) {
    node.forEach(closeObjects);
  } else if (node && typeof node === "object") {
    if (node.properties && node.additionalProperties === undefined) node.additionalProperties = false;
    Object.values(node).forEach(closeObjects);
  }
}

const added = new Set();
function addSchemas() {
  for (const [id, schema] of schemas) {
    if (added.has(id)) continue;
    const copy = structuredClone(schema);
    closeObjects(copy);
    ajv.addSchema(copy, id);
    added.add(id);
  }
}

// The schema id for apiVersion + kind, found through the model class in kubernetes-models'
// public module layout ("apps/v1" -> kubernetes-models/apps/v1, core "v1" -> kubernetes-models/v1).
function schemaIdFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || !/^([a-z0-9.-]+\/)?v[0-9a-z]+$/.test(apiVersion)) {
    throw new Error(`apiVersion ${JSON.stringify(apiVersion)} is not a Kubernetes API version`);
  }
  // kubernetes-models also carries beta versions that clusters no longer serve (apps/v1beta2,
  // autoscaling/v2beta1, policy/v1beta1, ...). Stable versions are never removed, so only those
  // are accepted: alpha and beta APIs are off by default or gone a few releases later.
  if (!/^([a-z0-9.-]+\/)?v[0-9]+$/.test(apiVersion)) {
    throw new Error(`apiVersion ${apiVersion} is not a stable (GA) API version`);
  }
  let mod;
  try {
    mod = require(`kubernetes-models/${apiVersion}`);
  } catch (e) {
    throw new Error(`apiVersion ${apiVersion} is not served by Kubernetes 1.27`);
  }
  const ctor = mod[kind];
  if (typeof ctor !== "function" || !(ctor.prototype instanceof Model) || ctor.kind !== kind) {
    throw new Error(`kind ${JSON.stringify(kind)} does not exist in ${apiVersion}`);
  }
  // base keeps the schema id and its registration function under two symbols on the prototype.
  const syms = Object.getOwnPropertySymbols(ctor.prototype);
  const idSym = syms.find((s) => s.description === "SCHEMA_ID");
  const addSym = syms.find((s) => s.description === "ADD_SCHEMA");
  if (!idSym || !addSym) throw new Error("kubernetes-models layout changed: no schema on the model");
  ctor.prototype[addSym]();
  return ctor.prototype[idSym];
}

function validateDoc(doc) {
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) return ["document is not a mapping"];
  let id;
  try {
    id = schemaIdFor(doc.apiVersion, doc.kind);
  } catch (e) {
    return [e.message];
  }
  addSchemas();
  const validate = ajv.getSchema(id);
  if (validate(doc)) return [];
  return withoutNullAlternatives(validate.errors).map((e) => {
    const where = e.instancePath || "/";
    if (e.keyword === "additionalProperties") return `${where}: unknown field "${e.params.additionalProperty}"`;
    return `${where}: ${e.message}`;
  });
}

// Optional fields are written `oneOf: [{$ref: T}, {type: "null"}]`; when T fails, ajv also reports
// "must be null" and "must match exactly one schema in oneOf" at every level above: noise that
// hides the real error, so those two are dropped (as @kubernetes-models/validate does).
function withoutNullAlternatives(errors) {
  const drop = new Set();
  const kept = [];
  for (const e of errors) {
    const i = e.keyword === "oneOf" && Array.isArray(e.schema) ? e.schema.findIndex((s) => s && s.type === "null") : -1;
    if (i >= 0) drop.add(`${e.schemaPath}/${i}/type`);
    else kept.push(e);
  }
  return kept.filter((e) => !drop.has(e.schemaPath));
}

let bad = 0;
for (const file of process.argv.slice(2)) {
  let docs;
  try {
    docs = yaml.loadAll(fs.readFileSync(file, "utf8"));
  } catch (e) {
    console.log(JSON.stringify({ file, index: 0, kind: null, name: null, ok: false, errors: [`YAML: ${e.message}`] }));
    bad++;
    continue;
  }
  docs.forEach((doc, index) => {
    if (doc === null || doc === undefined) return; // an empty document between two `---`
    const errors = validateDoc(doc);
    const name = doc && doc.metadata ? doc.metadata.name : null;
    console.log(JSON.stringify({ file, index, kind: doc && doc.kind, name, ok: errors.length === 0, errors }));
    if (errors.length) bad++;
  });
}
process.exit(bad ? 1 : 0);
