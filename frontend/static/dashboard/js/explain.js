// "Explain a token's weight": where a token's FIPO future-KL came from, rebuilt from the sample's
// per-token arrays and the run's FIPO settings (the `fipo` block of the samples API).
//
// FIPO (docs/algorithms.md) weights token t's advantage by w_t = clip(exp(F_t), low, high) with
//   F_t = Σ_{k ≥ t} γ^(k−t) · x_k,   x_k = δ_k (the clamped log-ratio log π − log π_old), or 0 where
//   the participation filter drops token k (δ_k > ln c),
// so the "share" of a later token k in F_t is γ^(k−t)·x_k, and the shares add up to F_t exactly.
// One explanation is one pass over the tokens after t (O(L)), keeping only the `top` largest shares
// in a small sorted array: a 20,480-token sample costs ~20k multiply-adds and renders ~10 rows.
//
// Everything here is pure (no DOM): the samples page renders the result, the browser tests check it.

/** Same clamp as the engine (fipo_engine/algorithms/future_kl.py LOG_RATIO_CLAMP). */
export const LOG_RATIO_CLAMP = 20;

const finite = (v) => v !== null && v !== undefined && Number.isFinite(v);

/**
 * The per-token clamped log-ratio δ and where it came from: the `log_ratio` channel (exactly what the
 * loss used, float16) or, for samples logged before it existed, logprob − old_logprob (both float16
 * around −1..−10, so the difference is only good to ~1e-2: marked "approximate").
 * @returns {{delta: Float64Array, source: "log_ratio"|"logprob"}|null}
 */
export function logRatios(channels) {
  const lr = channels.log_ratio;
  if (Array.isArray(lr)) {
    const delta = new Float64Array(lr.length);
    for (let i = 0; i < lr.length; i++) delta[i] = finite(lr[i]) ? lr[i] : 0;
    return { delta, source: "log_ratio" };
  }
  const lp = channels.logprob, old = channels.old_logprob;
  if (!Array.isArray(lp) || !Array.isArray(old)) return null;
  const delta = new Float64Array(lp.length);
  for (let i = 0; i < lp.length; i++) {
    delta[i] = finite(lp[i]) && finite(old[i]) ? Math.max(-LOG_RATIO_CLAMP, Math.min(LOG_RATIO_CLAMP, lp[i] - old[i])) : 0;
  }
  return { delta, source: "logprob" };
}

/** Whether token k takes part in future-KL sums (docs/algorithms.md "Policy losses"; future_kl.participation_mask). */
export function participates(delta, k, fipo, advantage) {
  if (fipo.participation_filter === "none") return true;
  const high = delta[k] > fipo.ln_c;
  if (fipo.participation_filter === "negative_advantage_only") return !(high && finite(advantage?.[k]) && advantage[k] < 0);
  return !high;
}

/**
 * Explain token t's future-KL and influence weight.
 * @param {number} t token index
 * @param {Object<string, (number|null)[]>} channels the sample's per-token arrays
 * @param {object} fipo the run's settings (samples API `fipo`: gamma, ln_c, weight_low/high, ...)
 * @param {{top?: number}} opts how many contributors to list (by |share|)
 * @returns {object|null} null when the sample has no log-ratios to rebuild F from
 */
export function explainToken(t, channels, fipo, { top = 10 } = {}) {
  const lr = logRatios(channels);
  if (!lr || !fipo || t < 0 || t >= lr.delta.length) return null;
  const { delta } = lr;
  const n = delta.length;
  const gamma = fipo.gamma;
  const first = fipo.future_kl_start === "exclude_current" ? t + 1 : t;
  const window = fipo.future_kl_window ?? -1;
  const last = window < 0 ? n - 1 : Math.min(n - 1, t + window);  // distances d ≤ W
  const advantage = channels.advantage;
  const count = Math.max(0, last - first + 1);
  const divisor = fipo.future_kl_average ? Math.max(1, count) : 1;

  const best = [];  // the `top` largest |share|, sorted descending: {k, share, delta}
  let F = 0, positive = 0, negative = 0, contributing = 0;
  const excluded = [];
  let decay = first === t ? 1 : gamma;  // γ^(k−t), updated by one multiply per token
  for (let k = first; k <= last; k++, decay *= gamma) {
    if (!participates(delta, k, fipo, advantage)) { excluded.push(k); continue; }
    const x = delta[k];
    if (x === 0) continue;
    const share = (decay * x) / divisor;
    F += share;
    contributing += 1;
    if (share > 0) positive += share; else negative += share;
    const mag = Math.abs(share);
    if (best.length < top || mag > Math.abs(best[best.length - 1].share)) {
      let j = best.length < top ? best.length : best.length - 1;
      while (j > 0 && Math.abs(best[j - 1].share) < mag) { best[j] = best[j - 1]; j--; }
      best[j] = { k, share, delta: x, distance: k - t };
    }
  }
  const listed = best.reduce((s, c) => s + c.share, 0);
  const weight = influenceWeight(t, F, delta, advantage, fipo);
  const stored = channels.future_kl?.[t];
  return {
    t, n, F, source: lr.source, first, last, count, divisor,
    contributors: best, rest: { count: contributing - best.length, share: F - listed }, positive, negative, excluded,
    storedF: finite(stored) ? stored : null, storedWeight: finite(channels.influence?.[t]) ? channels.influence[t] : null,
    weight,
  };
}

/**
 * The influence weight of token t (docs/algorithms.md "Policy losses"; losses.fipo_loss): clip(exp(F), low, high),
 * then, for a negative-advantage token whose ratio exceeds the safety threshold, clip into the safety band.
 * ppo/dapo do not reweight: the weight is 1.
 */
export function influenceWeight(t, F, delta, advantage, fipo) {
  if (fipo.policy_loss !== "fipo") return { raw: Math.exp(F), value: 1, clipped: null, safety: false, reweights: false };
  const raw = Math.exp(F);
  let value = Math.min(fipo.weight_high, Math.max(fipo.weight_low, raw));
  const clipped = raw > fipo.weight_high ? "high" : raw < fipo.weight_low ? "low" : null;
  const ratio = Math.exp(delta[t]);
  const safety = fipo.safety_thresh !== null && fipo.safety_thresh !== undefined && finite(advantage?.[t])
    && advantage[t] < 0 && ratio > fipo.safety_thresh;
  if (safety) value = Math.min(fipo.safety_band[1], Math.max(fipo.safety_band[0], value));
  return { raw, value, clipped, safety, ratio, reweights: true };
}

/**
 * How far a rebuilt F may be from the stored one: the stored value and every log-ratio were rounded
 * to float16 (relative 2^-11 each), plus float16's subnormal spacing per term.
 */
export function float16Tolerance(ex) {
  const terms = ex.positive - ex.negative;  // Σ |share|
  return 1e-3 * (Math.abs(ex.F) + terms) + 1e-7 * Math.max(1, ex.count) + 1e-6;
}

/** "mini-batch 3 of 4" (1-based for people) and what it means for F; null when the sample does not say. */
export function minibatchLabel(sample) {
  const { minibatch, num_minibatches: total } = sample;
  if (minibatch === null || minibatch === undefined || !total) return null;
  const text = `mini-batch ${minibatch + 1} of ${total}`;
  if (minibatch === 0) {
    return { text, note: "Trained in the first mini-batch of its rollout batch: the policy had not moved yet, " +
      "so π = π_old, every log-ratio and its future-KL are exactly 0 and every weight is clip(exp(0)) = 1." };
  }
  return { text, note: `Trained after ${minibatch} optimizer step${minibatch > 1 ? "s" : ""} on this rollout batch: ` +
    "the policy has moved away from π_old, so future-KL can be non-zero." };
}
