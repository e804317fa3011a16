// A form rendered from the run config's JSON Schema (pydantic's model_json_schema):
// $defs/$ref resolved, nested sections as fieldsets, enums as selects, booleans as checkboxes,
// numbers with min/max, optional (anyOf [T, null]) fields accept an empty value, lists and free
// dicts as JSON text, descriptions as help text. Fields that differ from the baseline (the
// preset) are highlighted; server errors are shown next to the field their dotted path names.

import { h } from "./dom.js";

const HIDDEN_ROOT = new Set(["schema_version", "preset"]);

function resolve(schema, node) {
  let n = node;
  const seen = new Set();
  while (n && n.$ref && !seen.has(n.$ref)) {
    seen.add(n.$ref);
    const name = n.$ref.replace(/^#\/\$defs\//, "");
    n = { ...schema.$defs[name], ...Object.fromEntries(Object.entries(n).filter(([k]) => k !== "$ref")) };
  }
  return n;
}

/** Classify a property: {kind, nullable, enum, min, max, exclusive...}. */
export function fieldKind(schema, prop) {
  let p = resolve(schema, prop);
  let nullable = false;
  if (Array.isArray(p.anyOf)) {
    const nonNull = p.anyOf.filter((a) => a.type !== "null");
    nullable = nonNull.length < p.anyOf.length;
    if (nonNull.length === 1) p = { ...resolve(schema, nonNull[0]), ...Object.fromEntries(Object.entries(p).filter(([k]) => k !== "anyOf")) };
    else return { kind: "json", nullable };
  }
  if (p.type === "object" && p.properties) return { kind: "section", node: p };
  if (Array.isArray(p.enum)) return { kind: "enum", options: p.enum, nullable };
  if (p.type === "boolean") return { kind: "boolean", nullable };
  if (p.type === "integer" || p.type === "number") {
    return { kind: p.type, nullable, min: p.minimum ?? p.exclusiveMinimum, max: p.maximum ?? p.exclusiveMaximum,
      exclusiveMin: p.exclusiveMinimum !== undefined, exclusiveMax: p.exclusiveMaximum !== undefined };
  }
  if (p.type === "string") return { kind: "string", nullable };
  return { kind: "json", nullable };
}

/** Flatten a nested config dict into {"a.b": value}; lists and free dicts are leaves only where the schema says so. */
export function flatten(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) flatten(v, path, out);
    else out[path] = v;
  }
  return out;
}

/** The value at a dotted path of a nested config (undefined when absent). */
export function getPath(obj, path) {
  let node = obj;
  for (const part of path.split(".")) {
    if (node === null || typeof node !== "object" || !(part in node)) return undefined;
    node = node[part];
  }
  return node;
}

/** JSON with object keys sorted: stored configs (PostgreSQL jsonb) do not keep key order. */
export function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
  return JSON.stringify(v === undefined ? null : v);
}

const same = (a, b) => canonical(a) === canonical(b);

function rangeHint(k) {
  const parts = [];
  if (k.min !== undefined) parts.push(`${k.exclusiveMin ? ">" : "≥"} ${k.min}`);
  if (k.max !== undefined) parts.push(`${k.exclusiveMax ? "<" : "≤"} ${k.max}`);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

export class SchemaForm {
  /**
   * @param {HTMLElement} root container for the fieldsets
   * @param {object} schema JSON Schema of RunConfig
   */
  constructor(root, schema) {
    this.root = root;
    this.schema = schema;
    this.fields = new Map();   // path -> {wrap, input, kind}
    this.sections = new Map(); // path -> fieldset
    this.baseline = {};
    this.onChange = null;
    this.build();
    root.addEventListener("input", (e) => this.changed(e.target));
    root.addEventListener("change", (e) => this.changed(e.target));
  }

  build() {
    const top = h("div");
    const loose = h("fieldset", {}, h("legend", {}, "General"));
    let hasLoose = false;
    for (const [name, prop] of Object.entries(this.schema.properties || {})) {
      if (HIDDEN_ROOT.has(name)) continue;
      const k = fieldKind(this.schema, prop);
      if (k.kind === "section") top.append(this.section(name, name, k.node, prop));
      else { loose.append(this.field(name, name, prop, k)); hasLoose = true; }
    }
    if (hasLoose) top.prepend(loose);
    this.root.replaceChildren(top);
  }

  section(path, name, node, prop) {
    const fs = h("fieldset", { "data-section": path, id: `sec-${path.replace(/\./g, "-")}` },
      h("legend", {}, name.replace(/_/g, " ")));
    const desc = prop.description || node.description;
    if (desc) fs.append(h("p.help.muted.small", {}, desc));
    fs.append(h("div.section-err", { role: "alert", hidden: true }));
    const nested = [];
    for (const [child, cprop] of Object.entries(node.properties)) {
      const cpath = `${path}.${child}`;
      const k = fieldKind(this.schema, cprop);
      if (k.kind === "section") nested.push(this.section(cpath, child, k.node, cprop));
      else fs.append(this.field(cpath, child, cprop, k));
    }
    fs.append(...nested);
    this.sections.set(path, fs);
    return fs;
  }

  field(path, name, prop, k) {
    const id = `f-${path.replace(/\./g, "-")}`;
    const desc = (resolve(this.schema, prop).description || "") + (k.kind === "integer" || k.kind === "number" ? rangeHint(k) : "");
    let input;
    if (k.kind === "enum") {
      input = h("select", { id, name: path }, ...(k.nullable ? [h("option", { value: "" }, "(none)")] : []),
        ...k.options.map((o) => h("option", { value: String(o) }, String(o))));
    } else if (k.kind === "boolean") {
      input = h("input", { id, name: path, type: "checkbox" });
    } else if (k.kind === "integer" || k.kind === "number") {
      input = h("input", { id, name: path, type: "number", step: k.kind === "integer" ? "1" : "any", inputmode: "decimal",
        min: k.min !== undefined ? String(k.min) : null, max: k.max !== undefined ? String(k.max) : null,
        placeholder: k.nullable ? "none" : null });
    } else if (k.kind === "string") {
      input = h("input", { id, name: path, type: "text", placeholder: k.nullable ? "none" : null, autocomplete: "off", spellcheck: false });
    } else {
      input = h("textarea", { id, name: path, rows: 2, spellcheck: false, placeholder: k.nullable ? "null" : "JSON" });
    }
    const err = h("div.err", { id: `${id}-err`, role: "alert", hidden: true });
    input.setAttribute("aria-describedby", `${id}-help ${id}-err`);
    const wrap = h("div.field", { "data-path": path }, h("label", { for: id, title: path }, name),
      input, h("div.help", { id: `${id}-help` }, desc), err);
    this.fields.set(path, { wrap, input, kind: k, err });
    return wrap;
  }

  /** Put a full config into the inputs and remember it (or `baseline`) as what "changed" compares to. */
  setValues(config, baseline = config) {
    this.baseline = this.valuesOf(baseline);
    for (const [path, f] of this.fields) {
      const v = getPath(config, path);
      this.write(f, v === undefined ? this.baseline[path] : v);
    }
    this.clearErrors();
    this.refreshChanged();
  }

  /** {field path: value} of a nested config, one entry per form field (free dicts stay whole). */
  valuesOf(config) {
    return Object.fromEntries([...this.fields.keys()].map((p) => [p, getPath(config, p)]));
  }

  write(f, v) {
    const { input, kind } = f;
    if (kind.kind === "boolean") input.checked = Boolean(v);
    else if (kind.kind === "json") input.value = v === undefined ? "" : JSON.stringify(v);
    else input.value = v === null || v === undefined ? "" : String(v);
  }

  /** The typed value of a field; malformed input is returned as the raw string so the server names the error. */
  read(path) {
    const { input, kind } = this.fields.get(path);
    const raw = input.value;
    switch (kind.kind) {
      case "boolean": return input.checked;
      case "integer": case "number": {
        if (raw.trim() === "") return kind.nullable ? null : (input.validity.badInput ? "invalid number" : null);
        const n = Number(raw);
        return Number.isFinite(n) ? n : raw;
      }
      case "enum": return raw === "" && kind.nullable ? null : raw;
      case "string": return raw === "" && kind.nullable ? null : raw;
      default: {
        if (raw.trim() === "") return kind.nullable ? null : raw;
        try { return JSON.parse(raw); } catch { return raw; }
      }
    }
  }

  /** {path: value} of every field that differs from the baseline. */
  overrides() {
    const out = {};
    for (const path of this.fields.keys()) {
      const v = this.read(path);
      if (!same(v, this.baseline[path])) out[path] = v;
    }
    return out;
  }

  changed(target) {
    const wrap = target.closest && target.closest(".field");
    if (!wrap) return;
    const path = wrap.dataset.path;
    wrap.classList.toggle("changed", !same(this.read(path), this.baseline[path]));
    if (wrap.classList.contains("invalid")) { wrap.classList.remove("invalid"); this.fields.get(path).err.hidden = true; }
    if (this.onChange) this.onChange();
  }

  refreshChanged() {
    for (const [path, f] of this.fields) f.wrap.classList.toggle("changed", !same(this.read(path), this.baseline[path]));
    if (this.onChange) this.onChange();
  }

  clearErrors() {
    for (const f of this.fields.values()) { f.wrap.classList.remove("invalid"); f.err.hidden = true; f.err.textContent = ""; }
    for (const fs of this.sections.values()) { const e = fs.querySelector(":scope > .section-err"); e.hidden = true; e.textContent = ""; }
  }

  /**
   * Show server errors next to their fields. Returns the errors no field or section could take
   * (shown by the caller at the top of the form).
   * @param {{path: string, message: string}[]} errors
   */
  showErrors(errors) {
    this.clearErrors();
    const leftover = [];
    let first = null;
    for (const e of errors) {
      const path = e.path || "";
      const f = this.fields.get(path);
      if (f) {
        f.wrap.classList.add("invalid");
        f.err.hidden = false;
        f.err.textContent = f.err.textContent ? `${f.err.textContent}; ${e.message}` : e.message;
        first = first || f.input;
        continue;
      }
      // a section-level error (model validator) or a deeper path inside a JSON field
      let p = path;
      while (p && !this.sections.has(p) && !this.fields.has(p)) p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "";
      if (p && this.fields.has(p)) {
        const g = this.fields.get(p);
        g.wrap.classList.add("invalid"); g.err.hidden = false; g.err.textContent = `${path}: ${e.message}`; first = first || g.input;
      } else if (p) {
        const box = this.sections.get(p).querySelector(":scope > .section-err");
        box.hidden = false; box.textContent = e.message; first = first || box;
      } else leftover.push(e);
    }
    if (first) { first.scrollIntoView({ block: "center" }); if (first.focus) first.focus({ preventScroll: true }); }
    return leftover;
  }
}
