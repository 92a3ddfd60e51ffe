/* Live metric charts of a run: one uPlot per metric key, polled from the run's JSON endpoint
   while the run is active, with EMA smoothing and other runs overlaid for comparison (and a
   table of the settings in which the compared runs differ).
   Text from the server is only ever set with textContent. */
(function () {
  "use strict";
  const root = document.getElementById("charts");
  if (!root || typeof uPlot === "undefined") return;
  const url = root.dataset.url;
  const runId = root.dataset.run;
  const emaInput = document.getElementById("ema");
  const emaOut = document.getElementById("ema-value");
  const logInput = document.getElementById("log-scale");
  const xInput = document.getElementById("x-axis");  // step, relative (time since the run's start) or wall
  const stateOut = document.getElementById("chart-state");
  const empty = document.getElementById("charts-empty");
  const COLORS = ["#2f6fdb", "#c0392b", "#1f8a4c", "#b7791f", "#8e44ad", "#16a085", "#d35400", "#7f8c8d", "#2c3e50"];
  const POLL_MS = 2000;
  const charts = new Map();  // key -> {plot, div, signature, summary}
  let last = null;
  let timer = null;

  const deletedOut = document.getElementById("compare-deleted");
  const deleted = new Map();  // id -> the name the page showed, of compared runs deleted since

  function comparedIds() {
    return Array.from(document.querySelectorAll("input[name=compare]:checked")).map((el) => el.value);
  }

  /* The smoothing's unit of steps on a chart: a thousandth of the steps the chart spans (W&B's
     "time weighted EMA"), the same for every run on it, so that a setting smooths a run logged
     every step and one logged every 10, or downsampled otherwise, over the same window of steps. */
  const SMOOTHING_UNITS = 1000;

  /* Exponential moving average over steps, not points: a value's weight decays by ``alpha`` for
     each ``unit`` of steps since it was logged, however many points lie in between; debiased, each
     smoothed value is the weighted mean of the values so far, so that the line starts at the first
     value. The positions in ``skip`` (a downsampled bucket's min or max, kept for the faint raw line)
     are left out, since a bucket's extremes are not a sample of its level. */
  function ema(steps, values, alpha, skip, unit) {
    if (alpha <= 0) return values;
    const out = new Array(values.length);
    let sum = 0, weight = 0, lastStep = null;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === null || v === undefined || skip.has(i)) { out[i] = null; continue; }
      const decay = lastStep === null ? 0 : Math.pow(alpha, (steps[i] - lastStep) / unit);
      sum = sum * decay + v;
      weight = weight * decay + 1;
      lastStep = steps[i];
      out[i] = sum / weight;
    }
    return out;
  }

  /* Axis labels that stay readable for tiny (1e-6) and huge values alike. */
  function fmt(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    return a < 1e-3 || a >= 1e5 ? v.toExponential(1) : String(+v.toPrecision(4));
  }
  /* A flat series (a constant 0, a fixed learning rate) gets a band around its value, not 0..100. */
  function yRange(u, min, max) {
    if (min === null || max === null) return [0, 1];
    if (min === max) { const pad = Math.abs(min) * 0.1 || 1; return [min - pad, max + pad]; }
    return uPlot.rangeNum(min, max, 0.1, true);
  }
  /* On the log scale: whole decades around the positive values (only those are drawn). */
  function yRangeLog(u, min, max) {
    if (min === null || max === null) return [1, 10];
    return uPlot.rangeLog(min, max, 10, true);
  }
  /* A series' value in the legend at the cursor's step. A series with no point there (a compared run
     that logged other steps, or was downsampled to other buckets) shows its nearest point's value and
     step, so that runs read side by side; before its first step or after its last, "--". */
  function shownValue(u, v, seriesIdx, idx) {
    if (v !== null && v !== undefined) return fmt(v);
    if (idx === null || idx === undefined) return "--";
    const xs = u.data[0], ys = u.data[seriesIdx];
    let before = idx - 1, after = idx + 1;
    while (before >= 0 && (ys[before] === null || ys[before] === undefined)) before--;
    while (after < ys.length && (ys[after] === null || ys[after] === undefined)) after++;
    if (before < 0 || after >= ys.length) return "--";
    const near = xs[idx] - xs[before] <= xs[after] - xs[idx] ? before : after;
    return fmt(ys[near]) + (axis === "step" ? " (step " + xs[near] + ")" : " (at " + xLabel(xs[near]) + ")");
  }
  const INT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7];
  // Tick spacings of the relative-time axis, in seconds: 1 s to a week.
  const DURATION_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
    43200, 86400, 172800, 604800];

  /* The x-axis: "step", "relative" (seconds since the run's start, ``originOf``, so that runs started
     at different times line up; W&B's and MLflow's "relative time") or "wall" (when). */
  function xAxis() {
    return xInput && ["relative", "wall"].includes(xInput.value) ? xInput.value : "step";
  }
  let axis = xAxis();  // the axis of the charts drawn last (the legend reads it)

  /* Seconds as "45s", "12m 30s", "3h 5m", "2d 4h": the two largest units. */
  function duration(seconds) {
    const sign = seconds < 0 ? "-" : "";
    let rest = Math.round(Math.abs(seconds));
    if (rest < 60 && Math.abs(seconds) < 10 && Math.abs(seconds) % 1) return sign + Math.abs(seconds).toFixed(1) + "s";
    const parts = [];
    [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]].forEach(([unit, size]) => {
      const n = Math.floor(rest / size);
      rest -= n * size;
      if (n && parts.length < 2) parts.push(n + unit);
      else if (parts.length === 1) parts.push("");  // a zero after the first unit ends it ("1h", not "1h 5s")
    });
    return sign + (parts.filter(Boolean).join(" ") || "0s");
  }
  function xLabel(x) {
    if (x === null || x === undefined) return "--";
    if (axis === "relative") return duration(x);
    if (axis === "wall") return new Date(x * 1000).toLocaleString();
    return String(x);
  }

  /* Where relative time starts for a run: when a worker started it, if it did before its first
     recorded metric (W&B counts from the process's start), else at that metric. */
  function originOf(runKey, clock) {
    const started = (last.starts || {})[runKey];
    return started !== null && started !== undefined && started <= clock[0][1] ? started : clock[0][1];
  }

  /* The x of each point of a series: its step, or on a time axis when it was recorded, read off its
     run's clock (the server's [step, seconds] pairs at up to 200 steps) by interpolation between the
     two around it (the first or last before or after them). null where the run has no clock. */
  function xsOf(s) {
    if (axis === "step") return s.steps;
    const clock = (last.clocks || {})[String(s.run_id)];
    if (!clock || !clock.length) return s.steps.map(() => null);
    const origin = axis === "relative" ? originOf(String(s.run_id), clock) : 0;
    return s.steps.map((step) => {
      let lo = 0, hi = clock.length;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (clock[mid][0] < step) lo = mid + 1; else hi = mid; }
      if (lo === clock.length) return clock[clock.length - 1][1] - origin;
      if (clock[lo][0] === step || lo === 0) return clock[lo][1] - origin;
      const [s0, t0] = clock[lo - 1], [s1, t1] = clock[lo];
      return t0 + (t1 - t0) * (step - s0) / (s1 - s0) - origin;
    });
  }

  /* Finished runs whose points on a time axis all stand at one instant: recorded in one batch (an
     import, a trainer that reports at its end; a live run's first batch is no such sign). Their
     names, for the note under the chart. */
  function instantRuns(list) {
    if (axis === "step") return [];
    const live = new Set(last.compared_active || []);
    if (!last.run.terminal) live.add(String(last.run.id));
    return list.filter((s) => {
      const clock = (last.clocks || {})[String(s.run_id)] || [];
      return s.steps.length > 1 && !live.has(String(s.run_id)) && clock.length &&
        clock[0][1] === clock[clock.length - 1][1];
    }).map((s) => last.runs[String(s.run_id)] || ("run " + s.run_id));
  }

  /* Series of one key across runs, aligned on the union of their x positions (null where absent): their
     steps, or on a time axis when those were recorded (``xsOf``; smoothing then decays per time, not steps).
     With smoothing on, this run's raw values come first, drawn faintly behind the smoothed line
     (as TensorBoard does), so a short run's real values stay visible. A long series comes
     downsampled (each bucket's first, last, min and max): its smoothed line follows the first and
     last points only, so that a long run and a short one smooth to the same level. Every run is
     smoothed over the same steps (``ema``'s unit, from the chart's span of steps). On the log scale
     (``log``) the values at or below 0 are left out before smoothing, as they are not drawn: the
     smoothed line is a mean of the values drawn. */
  function aligned(seriesOfKey, alpha, log) {
    const positions = seriesOfKey.map(xsOf);
    const steps = new Set();
    positions.forEach((p) => p.forEach((x) => { if (x !== null) steps.add(x); }));
    const xs = Array.from(steps).sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    // The window: a thousandth of the chart's steps; on a time axis, of its longest run's time (on
    // wall time the gap between runs started days apart would otherwise widen it for both).
    const spans = positions.map((p) => {
      const known = p.filter((x) => x !== null);
      return known.length ? Math.max(...known) - Math.min(...known) : 0;
    });
    const span = axis === "step" ? (xs.length > 1 ? xs[xs.length - 1] - xs[0] : 0) : Math.max(0, ...spans);
    const unit = span > 0 ? span / SMOOTHING_UNITS : 1;
    const ys = [];
    seriesOfKey.forEach((s, k) => {
      const col = new Array(xs.length).fill(null);
      const at = positions[k];  // on a time axis, points of one batch share an x: the last is drawn
      const bucketEdges = new Set(s.extremes || []);
      const extremes = new Set();  // x positions whose drawn point is a bucket's min or max only
      s.steps.forEach((_, i) => {
        if (at[i] === null) return;
        const j = index.get(at[i]);
        col[j] = log && s.values[i] <= 0 ? null : s.values[i];
        if (bucketEdges.has(i)) extremes.add(j); else extremes.delete(j);
      });
      if (alpha > 0 && String(s.run_id) === runId) ys.push(col);
      ys.push(ema(xs, col, alpha, extremes, unit));
    });
    return [xs, ...ys];
  }

  /* Each run's last, lowest and highest raw value, as text under the chart (a downsampled series
     keeps every bucket's min and max, so these are exact). */
  function renderStats(table, list, colorOf) {
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    ["Run", "Last", "Min", "Max"].forEach((text) => {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = text;
      head.appendChild(th);
    });
    const body = table.createTBody();
    list.forEach((s) => {
      const tr = body.insertRow();
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = last.runs[String(s.run_id)] || ("run " + s.run_id);
      th.style.borderLeftColor = colorOf(s.run_id);  // the run's line colour
      tr.appendChild(th);
      const values = s.values.filter((v) => v !== null && v !== undefined);
      if (!values.length) { tr.insertCell().textContent = "no values yet"; return; }
      const lastCell = tr.insertCell();
      lastCell.textContent = fmt(values[values.length - 1]);
      const at = xsOf(s);  // on a time axis, when (or how long after the start) that step was recorded
      lastCell.title = "at step " + s.steps[s.steps.length - 1] +
        (axis !== "step" && at[at.length - 1] !== null ? ", " + xLabel(at[at.length - 1]) : "");
      tr.insertCell().textContent = fmt(values.reduce((a, b) => Math.min(a, b)));
      tr.insertCell().textContent = fmt(values.reduce((a, b) => Math.max(a, b)));
    });
  }

  /* A chart in words, for whoever cannot see the canvas: each run's steps, last value and range. */
  function describe(key, list) {
    return key + ": " + list.map((s) => {
      const name = last.runs[String(s.run_id)] || ("run " + s.run_id);
      const values = s.values.filter((v) => v !== null && v !== undefined);
      if (!values.length) return name + ", no values yet";
      const low = values.reduce((a, b) => Math.min(a, b)), high = values.reduce((a, b) => Math.max(a, b));
      // a downsampled series holds some of its steps' values only: its count of points is no count of steps
      const count = s.downsampled ? values.length + " of its points" : values.length + " step" + (values.length === 1 ? "" : "s");
      return name + ", " + count + " from " + s.steps[0] +
        " to " + s.steps[s.steps.length - 1] + ", last " + fmt(values[values.length - 1]) +
        ", lowest " + fmt(low) + ", highest " + fmt(high);
    }).join("; ") + ".";
  }

  /* The settings that differ between this run and the compared ones, as a table. */
  const differences = document.getElementById("compare-differences");
  function renderDifferences() {
    if (!differences) return;
    const diff = last.differences || { order: [], rows: [] };
    differences.replaceChildren();
    differences.hidden = diff.order.length < 2;
    if (differences.hidden) return;
    if (!diff.rows.length) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = "The compared runs were launched with the same settings.";
      differences.appendChild(p);
      return;
    }
    const table = document.createElement("table");
    table.className = "settings-differences";
    const caption = document.createElement("caption");
    caption.textContent = "Settings that differ";
    table.appendChild(caption);
    const head = table.createTHead().insertRow();
    ["Setting", ...diff.order.map((id) => last.runs[id] || ("run " + id))].forEach((text) => {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = text;
      head.appendChild(th);
    });
    const body = table.createTBody();
    diff.rows.forEach((row) => {
      const tr = body.insertRow();
      const th = document.createElement("th");
      th.scope = "row";
      const code = document.createElement("code");
      code.textContent = row.key;
      th.appendChild(code);
      tr.appendChild(th);
      row.values.forEach((value) => { tr.insertCell().textContent = value; });
    });
    differences.appendChild(table);
  }

  /* Compared runs the server no longer found: said by the name the page showed them under, their
     boxes unticked (and the address with them) so that the next polls stop asking. */
  function sayDeleted(ids) {
    ids.forEach((id) => {
      const box = document.querySelector("input[name=compare][value='" + CSS.escape(id) + "']");
      if (box) { box.checked = false; box.disabled = true; }
      if (!deleted.has(id)) deleted.set(id, (box && box.dataset.name) || "");
    });
    if (!ids.length) return;
    rememberCompared();
    deletedOut.textContent = Array.from(deleted, ([id, name]) =>
      "Run " + id + " you compared" + (name ? " (\"" + name + "\")" : "") +
      " was deleted; its curves are no longer shown.").join(" ");
    deletedOut.hidden = false;
  }

  function render() {
    if (!last) return;
    renderDifferences();
    const alpha = parseFloat(emaInput ? emaInput.value : "0");
    const log = Boolean(logInput && logInput.checked);
    // a time axis asked for while the last poll's answer, without clocks, was on its way: its own comes next
    if (xAxis() !== "step" && !last.clocks) return;
    axis = xAxis();
    const byKey = new Map();
    last.series.forEach((s) => {
      if (!byKey.has(s.key)) byKey.set(s.key, []);
      byKey.get(s.key).push(s);
    });
    empty.hidden = byKey.size > 0;
    if (!byKey.size) empty.textContent = "No metrics yet.";  // the page said it was loading them
    const runIds = Object.keys(last.runs);
    byKey.forEach((list, key) => {
      list.sort((a, b) => (String(a.run_id) === runId ? -1 : String(b.run_id) === runId ? 1 : a.run_id - b.run_id));
      const data = aligned(list, alpha, log);
      // a log scale cannot draw zero or a negative value: left out, and their number said under the chart
      const hidden = log ? list.reduce((n, s) => n + s.values.filter((v) => v !== null && v <= 0).length, 0) : 0;
      const few = data[0].length < 3;  // a line needs two points: show the points themselves
      const signature = list.map((s) => s.run_id).join(",") + (alpha > 0 ? ":raw" : "") + (few ? ":few" : "") +
        (log ? ":log" : "") + ":" + axis;
      let entry = charts.get(key);
      if (entry && entry.signature !== signature) { entry.plot.destroy(); entry.div.remove(); charts.delete(key); entry = null; }
      if (!entry) {
        const div = document.createElement("div");
        div.className = "chart";
        div.dataset.key = key;
        const title = document.createElement("h3");
        title.textContent = key;
        div.appendChild(title);
        const summary = document.createElement("p");
        summary.className = "visually-hidden chart-summary";
        div.appendChild(summary);
        root.appendChild(div);
        const note = document.createElement("p");
        note.className = "muted chart-note";
        const series = [{ label: { step: "step", relative: "time since start", wall: "time" }[axis],
                          value: (u, v) => xLabel(v) }];
        list.forEach((s) => {
          const name = last.runs[String(s.run_id)] || ("run " + s.run_id);
          const color = COLORS[runIds.indexOf(String(s.run_id)) % COLORS.length];
          const mine = String(s.run_id) === runId;
          if (alpha > 0 && mine) {
            series.push({ label: name + " (raw)", stroke: color + "55", width: 1, spanGaps: true, points: { show: few },
                          value: shownValue });
          }
          series.push({ label: alpha > 0 ? name + " (EMA)" : name, stroke: color, width: mine ? 2 : 1, spanGaps: true,
                        points: { show: few }, value: shownValue });
        });
        const plot = new uPlot({ width: Math.max(280, Math.min(560, root.clientWidth / 2 - 16)), height: 200,
          scales: { x: { time: axis === "wall" }, y: log ? { distr: 3, range: yRangeLog } : { range: yRange } },
          series: series, legend: { live: true },
          axes: [axis === "wall" ? {} : axis === "relative"
            ? { incrs: DURATION_STEPS, values: (u, splits) => splits.map((v) => (v === null ? "" : duration(v))) }
            : { incrs: INT_STEPS },
          { size: 64, values: (u, splits) => splits.map((v) => (v === null ? "" : fmt(v))) }] }, data, div);
        div.appendChild(note);
        const stats = document.createElement("table");
        stats.className = "chart-stats";
        div.appendChild(stats);
        entry = { plot, div, signature, summary, note, stats };
        charts.set(key, entry);
      } else {
        entry.plot.setData(data);
      }
      entry.summary.textContent = describe(key, list);
      const instant = instantRuns(list);
      entry.note.textContent = [
        hidden ? hidden + " value" + (hidden === 1 ? "" : "s") + " at or below 0 " +
          (hidden === 1 ? "is" : "are") + " not drawn on the log scale." : "",
        instant.length ? instant.map((name) => "\u201c" + name + "\u201d").join(", ") + (instant.length === 1 ? " has" : " have") +
          " every point recorded at one instant (sent in one batch, as an import does): on a time axis " +
          (instant.length === 1 ? "it stands" : "they stand") + " at that instant." : "",
      ].filter(Boolean).join(" ");
      entry.note.hidden = !entry.note.textContent;
      renderStats(entry.stats, list, (id) => COLORS[runIds.indexOf(String(id)) % COLORS.length]);
    });
    charts.forEach((entry, key) => {
      if (!byKey.has(key)) { entry.plot.destroy(); entry.div.remove(); charts.delete(key); }
    });
  }

  async function poll() {
    clearTimeout(timer);
    const params = new URLSearchParams();
    comparedIds().forEach((id) => params.append("compare", id));
    if (xAxis() !== "step") params.set("x", xAxis());  // the runs' clocks come with the series
    try {
      const response = await fetch(url + "?" + params.toString(), { headers: { Accept: "application/json" } });
      if (response.redirected && new URL(response.url).pathname.startsWith("/accounts/login")) {
        // the session has ended: the login page, back to this run, instead of parsing its HTML
        stateOut.textContent = "logged out";
        window.location.assign(new URL(response.url).pathname + "?next=" + encodeURIComponent(location.pathname + location.search));
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      last = await response.json();
      if (deletedOut) sayDeleted(last.compared_missing || []);
      render();
      const run = last.run;
      const step = run.step_unreported ? "step not reported"  // an external trainer that sends no current_step
        : "step " + run.current_step + (run.steps_planned ? " of " + run.steps_planned : "");
      const following = (last.compared_active || []).length;  // compared runs still going
      stateOut.textContent = run.terminal
        ? "final" + (following ? " · following " + following + " compared run" + (following === 1 ? "" : "s") : "")
        : run.status === "queued" ? "queued" + (run.current_step ? " at " + step : ", not started") : "live · " + step;
      if (!run.terminal || following) timer = setTimeout(poll, POLL_MS);
    } catch (err) {
      stateOut.textContent = "charts could not be updated (" + err.message + "); retrying";
      timer = setTimeout(poll, POLL_MS * 3);
    }
  }

  /* The smoothing, the log scale and the x-axis in the address too (?ema=0.9&log=1&x=relative), read
     back on load. */
  const asked = new URLSearchParams(location.search);
  const askedEma = parseFloat(asked.get("ema"));
  if (emaInput && Number.isFinite(askedEma)) emaInput.value = String(Math.min(0.99, Math.max(0, askedEma)));
  if (emaInput) emaOut.textContent = parseFloat(emaInput.value).toFixed(2);
  if (logInput && asked.get("log") === "1") logInput.checked = true;
  if (xInput && ["relative", "wall"].includes(asked.get("x"))) xInput.value = asked.get("x");

  if (emaInput) emaInput.addEventListener("input", () => {
    emaOut.textContent = parseFloat(emaInput.value).toFixed(2);
    rememberCompared();
    render();
  });
  if (logInput) logInput.addEventListener("change", () => { rememberCompared(); render(); });
  // redrawn at once when the last answer has what the axis needs (render waits otherwise), then asked again
  if (xInput) xInput.addEventListener("change", () => { rememberCompared(); render(); poll(); });
  /* The ticked runs in the address (?compare=), so that a reload or a shared link shows the same overlay,
     with the smoothing (when not the page's default) and the log scale. */
  function rememberCompared() {
    const params = new URLSearchParams(location.search);
    ["compare", "ema", "log", "x"].forEach((name) => params.delete(name));
    comparedIds().forEach((id) => params.append("compare", id));
    if (emaInput && emaInput.value !== emaInput.defaultValue) params.set("ema", emaInput.value);
    if (logInput && logInput.checked) params.set("log", "1");
    if (xAxis() !== "step") params.set("x", xAxis());
    const query = params.toString();
    history.replaceState(history.state, "", location.pathname + (query ? "?" + query : "") + location.hash);
  }

  /* On the document, since the picker's search swaps in other boxes. */
  document.addEventListener("change", (event) => {
    if (!event.target.matches("input[name=compare]")) return;
    rememberCompared();
    poll();
  });
  poll();
})();
