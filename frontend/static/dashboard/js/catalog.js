// The metric catalog (GET /api/v1/metrics/catalog): chart groups, units and one-line meanings.

import { api } from "./api.js";

let cached = null;

/** {metrics: Map(name -> {name, group, unit, meaning}), groups: [{name, title}]} */
export async function loadCatalog() {
  if (cached) return cached;
  const raw = await api("metrics/catalog");
  const list = Array.isArray(raw) ? raw : raw.metrics || [];
  let groups = [];
  const g = Array.isArray(raw) ? null : raw.groups;
  if (Array.isArray(g)) groups = g.map((x) => (typeof x === "string" ? { name: x, title: x } : { name: x.name || x.id, title: x.title || x.name }));
  else if (g && typeof g === "object") groups = Object.entries(g).map(([name, title]) => ({ name, title: String(title) }));
  const metrics = new Map(list.map((m) => [m.name, m]));
  for (const m of list) if (!groups.some((x) => x.name === m.group)) groups.push({ name: m.group, title: m.group });
  cached = { metrics, groups };
  return cached;
}

/**
 * Charts for a set of metric keys: one per (group, unit) in catalog order, so every chart has
 * one y unit. Keys outside the catalog go to "Other", one chart per key prefix.
 * @returns {{id: string, group: string, title: string, unit: string, keys: string[]}[]}
 */
export function planCharts(catalog, keys) {
  const charts = new Map();
  const order = new Map(catalog.groups.map((g, i) => [g.name, i]));
  const title = (name) => (catalog.groups.find((g) => g.name === name) || { title: name }).title;
  const catalogIndex = new Map([...catalog.metrics.keys()].map((k, i) => [k, i]));
  const sorted = [...keys].sort((a, b) => (catalogIndex.get(a) ?? 1e9) - (catalogIndex.get(b) ?? 1e9) || a.localeCompare(b));
  for (const key of sorted) {
    const m = catalog.metrics.get(key);
    const group = m ? m.group : "other";
    const unit = m ? m.unit : key.split("/")[0];
    const id = `${group}:${unit}`;
    if (!charts.has(id)) charts.set(id, { id, group, groupTitle: m ? title(group) : "Other metrics", unit, keys: [] });
    charts.get(id).keys.push(key);
  }
  const list = [...charts.values()].sort((a, b) => (order.get(a.group) ?? 1e9) - (order.get(b.group) ?? 1e9));
  for (const c of list) {
    const units = list.filter((x) => x.group === c.group).length;
    c.title = units > 1 ? `${c.groupTitle} · ${c.unit}` : c.groupTitle;
  }
  return list;
}
