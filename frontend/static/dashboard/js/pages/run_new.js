// New run: the form is rendered from GET /api/v1/config/schema, filled from a preset of
// GET /api/v1/config/presets (or from an existing run's config when cloning, ?from=<id>),
// and submitted as {"name", "team", "preset", "overrides": {dotted: value}}. Server validation
// errors land next to the field that fields[].path names.

import { api, bootstrap, ApiError } from "../api.js";
import { h } from "../dom.js";
import { SchemaForm, canonical } from "../schemaform.js";

const boot = bootstrap();
const form = document.getElementById("run-form");
const banner = document.getElementById("form-banner");
const nameIn = document.getElementById("run-name");
const teamIn = document.getElementById("run-team");
const presetIn = document.getElementById("run-preset");
const presetHelp = document.getElementById("preset-help");
const schemaRoot = document.getElementById("schema-root");
const counter = document.getElementById("changed-count");
const buttons = [...form.querySelectorAll(".form-actions button")];

let presets = [];
let sf = null;
let source = null;     // the run being cloned, if any

const writable = (boot.teams || []).filter((t) => t.role !== "viewer");
for (const t of writable) teamIn.append(h("option", { value: String(t.id) }, t.name));
if (!writable.length) teamIn.append(h("option", { value: "" }, "(you cannot create runs in any team)"));

function showBanner(kind, text, list = []) {
  banner.replaceChildren();
  if (!text) return;
  banner.append(h(`div.banner.${kind}`, { role: kind === "error" ? "alert" : "status" }, text,
    list.length ? h("ul", {}, ...list.map((e) => h("li", {}, e.path ? `${e.path}: ${e.message}` : e.message))) : null));
}

function topField(name, message) {
  const wrap = form.querySelector(`.field[data-path="${name}"]`);
  const err = wrap.querySelector(".err");
  wrap.classList.toggle("invalid", Boolean(message));
  err.hidden = !message;
  err.textContent = message || "";
}

function presetByName(name) { return presets.find((p) => p.name === name); }

function applyPreset(name) {
  const p = presetByName(name);
  if (!p) return;
  presetHelp.textContent = `${p.title}: the fields below start at this preset.`;
  sf.setValues(p.config, p.config);
}

/** Links to the top-level sections, each with the number of fields changed in it. */
function renderSectionNav(changed) {
  let nav = document.getElementById("section-nav");
  if (!nav) {
    nav = h("nav.section-nav", { id: "section-nav", "aria-label": "Config sections" }, h("span.muted", {}, "Sections:"));
    banner.parentNode.append(nav);
  }
  const tops = [...sf.sections.keys()].filter((p) => !p.includes("."));
  nav.replaceChildren(h("span.muted", {}, "Sections:"), ...tops.map((t) => {
    const n = changed.filter((p) => p.startsWith(`${t}.`)).length;
    return h("a", { href: `#sec-${t}` }, t, n ? h("span.n", { title: `${n} changed` }, String(n)) : null);
  }));
}

function updateCounter() {
  const changed = Object.keys(sf.overrides());
  renderSectionNav(changed);
  const n = changed.length;
  counter.textContent = n ? `${n} field${n > 1 ? "s" : ""} changed from the ${source ? "cloned run" : "preset"}` : "No changes from the preset";
}

async function init() {
  try {
    const [schema, presetList] = await Promise.all([api("config/schema"), api("config/presets")]);
    presets = presetList;
    for (const p of presets) presetIn.append(h("option", { value: p.name }, p.title || p.name));
    sf = new SchemaForm(schemaRoot, schema);
    sf.onChange = updateCounter;
    if (boot.clone_from) {
      source = await api(`runs/${boot.clone_from}/`);
      nameIn.value = `${source.name} (copy)`;
      if (source.team && [...teamIn.options].some((o) => o.value === String(source.team.id))) teamIn.value = String(source.team.id);
      const base = presetByName(source.preset) || presetByName(source.config && source.config.preset);
      if (base) presetIn.value = base.name;
      // the clone's values, highlighted against its preset (what the run changed on purpose)
      sf.setValues(source.config, base ? base.config : source.config);
      presetHelp.textContent = `Cloned from run #${source.id} “${source.name}”; highlights compare with ${base ? base.title : "its own config"}.`;
    } else {
      const want = new URLSearchParams(location.search).get("preset");
      presetIn.value = presetByName(want) ? want : (presetByName("cpu-demo") ? "cpu-demo" : presets[0].name);
      applyPreset(presetIn.value);
    }
    updateCounter();
  } catch (exc) {
    schemaRoot.replaceChildren(h("div.state.error", { role: "alert" }, h("strong", {}, "Could not load the config form."), exc.message));
  }
}

presetIn.addEventListener("change", () => {
  const dirty = sf && Object.keys(sf.overrides()).length;
  if (dirty && !window.confirm("Switching preset resets the fields you changed. Continue?")) return;
  source = null;
  applyPreset(presetIn.value);
});
document.getElementById("reset-preset").addEventListener("click", () => { source = null; applyPreset(presetIn.value); });

async function submit(launch) {
  showBanner("", "");
  topField("name", ""); topField("team", ""); topField("preset", "");
  sf.clearErrors();
  if (!nameIn.value.trim()) { topField("name", "Give the run a name."); nameIn.focus(); return; }
  // Clones without a preset send the whole config; otherwise the preset and the changed fields.
  const preset = presetByName(presetIn.value);
  const body = { name: nameIn.value.trim(), team: Number(teamIn.value) };
  if (preset) {
    body.preset = preset.name;
    const overrides = {};
    const base = sf.valuesOf(preset.config);
    for (const path of sf.fields.keys()) {
      const v = sf.read(path);
      if (canonical(v) !== canonical(base[path])) overrides[path] = v;
    }
    body.overrides = overrides;
  } else {
    body.config = {};
    for (const path of sf.fields.keys()) {
      const parts = path.split(".");
      let node = body.config;
      for (const part of parts.slice(0, -1)) node = node[part] = node[part] || {};
      node[parts[parts.length - 1]] = sf.read(path);
    }
  }
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const run = await api("runs/", { method: "POST", body });
    if (launch) {
      try { await api(`runs/${run.id}/launch`, { method: "POST" }); }
      catch (exc) { location.assign(`${run.url || `/runs/${run.id}/`}?launch_error=${encodeURIComponent(exc.message)}`); return; }
    }
    location.assign(run.url || `/runs/${run.id}/`);
  } catch (exc) {
    buttons.forEach((b) => { b.disabled = false; });
    if (!(exc instanceof ApiError)) throw exc;
    const rest = [];
    for (const e of exc.fields) {
      if (["name", "team", "preset"].includes(e.path)) topField(e.path, e.message);
      else rest.push(e);
    }
    const leftover = sf.showErrors(rest.map((e) => ({ ...e, path: (e.path || "").replace(/^(config|overrides)\./, "") })));
    showBanner("error", exc.fields.length ? "The server rejected the config; see the highlighted fields." : exc.message, leftover);
    if (!exc.fields.length || leftover.length) banner.scrollIntoView({ block: "center" });
  }
}

form.addEventListener("submit", (e) => { e.preventDefault(); submit(true); });
document.getElementById("create-draft").addEventListener("click", () => submit(false));
init();
