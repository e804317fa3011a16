// Eval jobs on the run page: "Evaluate…" on each checkpoint opens a dialog (benchmark, k,
// temperature, top-p, max new tokens; defaults from the run's config, the paper's protocol for big
// models), POST /api/v1/leaderboards/evaluate/ queues the job, and the run's websocket brings its
// progress as `eval_job` items (problems done of total, running Pass@1, failure reason, entry).

import { api, ApiError } from "./api.js";
import { h, statusBadge, showState } from "./dom.js";

const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);

export class EvalPanel {
  /** @param {object} run the run detail @param {boolean} canWrite owner or member of the run's team */
  constructor(run, canWrite) {
    this.run = run;
    this.canWrite = canWrite;
    this.jobs = new Map();
    this.defaults = {};
    this.benchmarks = null;
    this.list = h("div#eval-jobs");
    this.card = h("section.card#evaluations", { "aria-labelledby": "eval-h" }, h("h2#eval-h", {}, "Evaluations"), this.list);
  }

  async load() {
    try {
      const data = await api("eval-jobs/", { params: { run: this.run.id } });
      this.defaults = data.defaults || {};
      for (const j of data.results || []) this.jobs.set(j.id, j);
    } catch { /* the list stays empty; new jobs still appear */ }
    this.render();
  }

  /** An "Evaluate…" button for a checkpoint (writers only). */
  button(step, label = "Evaluate…") {
    if (!this.canWrite) return null;
    return h("button.small.eval-btn", { type: "button", "data-step": String(step), onclick: () => this.open(step) }, label);
  }

  onItem(d) {
    if (typeof d.job !== "number") return;
    this.jobs.set(d.job, { ...(this.jobs.get(d.job) || {}), ...d, id: d.job });
    this.render();
  }

  render() {
    const jobs = [...this.jobs.values()].sort((a, b) => b.id - a.id);
    if (!jobs.length) {
      showState(this.list, "empty", "No evaluations yet.", this.canWrite ? "Use Evaluate… on a checkpoint to put it on a leaderboard." : "");
      return;
    }
    this.list.replaceChildren(h("table.data", {}, h("thead", {}, h("tr", {}, h("th", {}, "benchmark"), h("th.num", {}, "step"), h("th", {}, "status"),
      h("th", {}, "progress"), h("th.num", {}, "Pass@1 so far"), h("th", {}, ""))), h("tbody", {}, ...jobs.map((j) => this.row(j)))));
  }

  row(j) {
    const frac = j.total ? Math.min(1, j.done / j.total) : 0;
    const actions = [];
    if (j.status === "succeeded" && j.entry) {
      actions.push(h("a.btn.small.entry-link", { href: `/leaderboards/entries/${j.entry}/` }, "View entry"), " ",
        h("a.small", { href: `/leaderboards/${j.benchmark}/` }, "board"));
    }
    if (!FINAL.has(j.status) && this.canWrite) actions.push(h("button.small.danger.eval-cancel", { type: "button", onclick: () => this.cancel(j.id) }, "Cancel"));
    return [h("tr", { "data-job": String(j.id), "data-status": j.status },
      h("td", {}, j.benchmark_label || String(j.benchmark)), h("td.num", {}, j.step ?? "–"), h("td", {}, statusBadge(j.status)),
      h("td", {}, h("div.progressbar", { role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(j.total || 0), "aria-valuenow": String(j.done || 0) },
        h("span", { style: `width:${100 * frac}%` })), h("div.small.muted.eval-progress", {}, `${j.done || 0} of ${j.total || "?"} problems`)),
      h("td.num.eval-pass", {}, pct(j.pass_at_1)), h("td", {}, ...actions)),
      j.error && j.status !== "succeeded" ? h("tr.eval-error", { "data-job-error": String(j.id) }, h("td", { colSpan: 6 }, h("pre.log", {}, j.error))) : null].filter(Boolean);
  }

  async cancel(id) {
    try { this.onItem({ ...(await api(`eval-jobs/${id}/cancel`, { method: "POST" })), job: id }); }
    catch (exc) { window.alert(exc.message); }
  }

  async open(step) {
    if (!this.benchmarks) {
      try { this.benchmarks = await api("benchmarks/"); } catch { this.benchmarks = []; }
    }
    const teamId = this.run.team ? this.run.team.id : null;
    const mine = this.benchmarks.filter((b) => b.team === null || b.team === teamId);
    const d = this.defaults;
    const num = (id, label, value, attrs = {}) => h("label", {}, label, h("input", { id, type: "number", value: value ?? "", ...attrs }));
    const msg = h("div.small.err#eval-msg", { role: "alert" });
    const dlg = h("dialog.eval#eval-dialog", { "aria-labelledby": "eval-title" },
      h("form", { method: "dialog" },
        h("h2#eval-title", {}, `Evaluate step ${step}`),
        h("div.grid", {},
          h("label", { style: "grid-column: 1 / -1" }, "Benchmark", h("select#eval-bench", { required: true },
            ...mine.map((b) => h("option", { value: String(b.id) }, `${b.label}${b.builtin ? " (built-in)" : ""} · ${b.n_problems} problems`)))),
          num("eval-k", "k (samples per problem)", d.k, { min: 1, max: 1024, step: 1 }),
          num("eval-temp", "temperature", d.temperature, { min: 0.01, step: "any" }),
          num("eval-topp", "top-p", d.top_p, { min: 0.01, max: 1, step: "any" }),
          num("eval-max", "max new tokens", d.max_new_tokens, { min: 1, step: 1 })),
        h("div.muted.small", {}, "Defaults: the run's own eval settings (the paper's k=32, T=1.0, top-p=0.7 for big models)."),
        msg,
        h("div.row", { style: "justify-content:flex-end;margin-top:.75rem" },
          h("button", { type: "button", onclick: () => { dlg.close(); dlg.remove(); } }, "Close"),
          h("button.primary#eval-submit", { type: "submit" }, "Evaluate"))));
    dlg.querySelector("form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const val = (id, int) => { const v = document.getElementById(id).value; return v === "" ? undefined : (int ? parseInt(v, 10) : parseFloat(v)); };
      const body = { run: this.run.id, step, benchmark: Number(document.getElementById("eval-bench").value),
        k: val("eval-k", true), temperature: val("eval-temp"), top_p: val("eval-topp"), max_new_tokens: val("eval-max", true) };
      try {
        const job = await api("leaderboards/evaluate/", { method: "POST", body });
        this.onItem({ ...job, job: job.job });
        dlg.close(); dlg.remove();
        this.card.scrollIntoView({ block: "nearest" });
      } catch (exc) {
        msg.textContent = exc instanceof ApiError ? exc.message : String(exc);
      }
    });
    document.body.append(dlg);
    dlg.showModal();
  }
}
