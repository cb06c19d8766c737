// hsrecon view: the page. Images come from api/image (PNG of a region of one layer, sampled at the
// screen's resolution), spectra from api/spectrum, scores from api/scores; plots are Plotly's.
// Everything shown from the server (file names included) goes through textContent, never innerHTML.
// window.hsview exposes the page's state for tests and scripts: what each image shows, the pins,
// how long the last click took to plot.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const PIN_COLOURS = ["#4ea1ff", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#f0f0f0"];
  const MAX_SCREEN_PX_PER_PIXEL = 48;
  const DETAIL_DELAY_MS = 120; // wait for the wheel or the drag to settle before asking for a sharper image
  const SHARP_ENOUGH = 1.5; // screen pixels per overview pixel before a sharper image is asked for

  const state = {
    meta: null, cube: 0, layer: "srgb", band: 0, cmap: "viridis", plo: 2, phi: 98,
    view: { scale: 1, tx: 0, ty: 0, fitted: true },
    pins: [], nextPin: 1, hover: null, hoverWanted: null, hoverBusy: false, detailTimer: null, scoresAsked: new Set(),
  };
  const hsview = (window.hsview = {
    ready: false, // the first overview is on screen
    pending: 0, // image loads scheduled or in flight
    images: {}, // pane slot → what it shows: {layer, band, x0, y0, step, cols, rows, lo, hi}
    pins: [], // [{pin, cube, name, x, y, values, truth, mrae}]
    hover: null, // the last hovered pixel's spectrum
    lastClickMs: null, // click → pinned spectrum plotted, in ms (performance.now)
    clicks: 0,
    errors: [],
    pixelAt: (clientX, clientY) => pixelAt(clientX, clientY),
  });

  // --- server --------------------------------------------------------------------------------------

  function apiUrl(path, params) {
    return `${path}?${new URLSearchParams(params).toString()}`;
  }

  async function getJSON(path, params) {
    const response = await fetch(apiUrl(path, params || {}));
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  function showStatus(text, isError) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
    if (isError) hsview.errors.push(text);
  }

  const cube = () => state.meta.cubes[state.cube];
  const formatNm = (nm) => `${Number(nm.toFixed(1))} nm`;
  const formatValue = (v) => (v === null || v === undefined ? "–" : Number(v).toPrecision(5));

  // --- view geometry -------------------------------------------------------------------------------

  function paneSize() {
    const pane = $("cube-pane");
    return { width: pane.clientWidth, height: pane.clientHeight };
  }

  function fitView() {
    const { width, height } = paneSize();
    const c = cube();
    const scale = Math.min(width / c.width, height / c.height, MAX_SCREEN_PX_PER_PIXEL);
    state.view = { scale, tx: (width - c.width * scale) / 2, ty: (height - c.height * scale) / 2, fitted: true };
    viewChanged();
  }

  function zoomAt(mx, my, factor) {
    const c = cube();
    const { width, height } = paneSize();
    const minScale = Math.min(width / c.width, height / c.height) / 4;
    const v = state.view;
    const scale = Math.min(Math.max(v.scale * factor, minScale), MAX_SCREEN_PX_PER_PIXEL);
    state.view = { scale, tx: mx - ((mx - v.tx) * scale) / v.scale, ty: my - ((my - v.ty) * scale) / v.scale, fitted: false };
    viewChanged();
  }

  function pixelAt(clientX, clientY) {
    const rect = $("cube-pane").getBoundingClientRect();
    return pixelAtPane(clientX - rect.left, clientY - rect.top);
  }

  function pixelAtPane(mx, my) {
    const v = state.view;
    const c = cube();
    const x = Math.floor((mx - v.tx) / v.scale);
    const y = Math.floor((my - v.ty) / v.scale);
    return x >= 0 && y >= 0 && x < c.width && y < c.height ? { x, y } : null;
  }

  function placeAll() {
    for (const slot of Object.keys(slots)) placeImage(slot);
    placeMarkers();
  }

  function placeImage(slot) {
    const { img } = slots[slot];
    const shown = hsview.images[slot];
    if (!shown || shown.cube !== state.cube) {
      img.style.visibility = "hidden";
      return;
    }
    const v = state.view;
    const c = cube();
    // Clip at the image's edge: a sampled pixel stands for `step` pixels, the last ones may overhang.
    const width = Math.min(shown.cols * shown.step, c.width - shown.x0);
    const height = Math.min(shown.rows * shown.step, c.height - shown.y0);
    img.style.visibility = "visible";
    img.style.left = `${v.tx + shown.x0 * v.scale}px`;
    img.style.top = `${v.ty + shown.y0 * v.scale}px`;
    img.style.width = `${shown.cols * shown.step * v.scale}px`;
    img.style.height = `${shown.rows * shown.step * v.scale}px`;
    img.style.clipPath = `inset(0 ${(shown.cols * shown.step - width) * v.scale}px ${(shown.rows * shown.step - height) * v.scale}px 0)`;
  }

  function placeMarkers() {
    for (const pane of [$("cube-pane"), $("photo-pane")]) {
      const layer = pane.querySelector(".markers");
      layer.replaceChildren();
      for (const pin of state.pins) {
        if (pin.cube !== state.cube) continue;
        const marker = document.createElement("div");
        marker.className = "marker";
        marker.style.left = `${state.view.tx + (pin.x + 0.5) * state.view.scale}px`;
        marker.style.top = `${state.view.ty + (pin.y + 0.5) * state.view.scale}px`;
        marker.style.borderColor = pin.colour;
        const label = document.createElement("span");
        label.textContent = String(pin.pin);
        label.style.color = pin.colour;
        marker.appendChild(label);
        layer.appendChild(marker);
      }
    }
  }

  function viewChanged() {
    placeAll();
    scheduleDetail();
  }

  // --- images --------------------------------------------------------------------------------------

  const slots = {}; // slot name → {img, controller, url, key}

  function layerParams(pane) {
    const layer = pane === "photo" ? "photo" : state.layer;
    const params = { cube: state.cube, layer };
    if (layer === "band") params.band = state.band;
    if (layer === "band" || layer === "mrae") Object.assign(params, { cmap: state.cmap, plo: state.plo, phi: state.phi });
    return params;
  }

  function overviewRegion() {
    const c = cube();
    const step = c.overview_step;
    return { x0: 0, y0: 0, step, cols: Math.ceil(c.width / step), rows: Math.ceil(c.height / step) };
  }

  function detailRegion() {
    // The visible part of the image at about one sampled pixel per screen pixel; null when the overview is as sharp.
    const c = cube();
    const v = state.view;
    const dpr = window.devicePixelRatio || 1;
    // The overview is sharp enough while one of its pixels spans at most SHARP_ENOUGH screen pixels.
    if (c.overview_step * v.scale * dpr <= SHARP_ENOUGH) return null;
    const step = Math.max(1, Math.floor(1 / (v.scale * dpr)));
    if (step >= c.overview_step) return null;
    const { width, height } = paneSize();
    const x0 = Math.max(0, Math.floor(-v.tx / v.scale / step) * step);
    const y0 = Math.max(0, Math.floor(-v.ty / v.scale / step) * step);
    const x1 = Math.min(c.width, Math.ceil((width - v.tx) / v.scale));
    const y1 = Math.min(c.height, Math.ceil((height - v.ty) / v.scale));
    if (x1 <= x0 || y1 <= y0) return null;
    const cols = Math.min(Math.ceil((x1 - x0) / step), Math.floor((c.width - 1 - x0) / step) + 1);
    const rows = Math.min(Math.ceil((y1 - y0) / step), Math.floor((c.height - 1 - y0) / step) + 1);
    return { x0, y0, step, cols, rows };
  }

  async function loadImage(slot, params, region) {
    const target = slots[slot];
    const key = JSON.stringify([params, region]);
    if (target.key === key) return;
    target.key = key;
    if (target.controller) target.controller.abort();
    const controller = (target.controller = new AbortController());
    hsview.pending += 1;
    try {
      const response = await fetch(apiUrl("api/image", { ...params, ...region }), { signal: controller.signal });
      if (!response.ok) throw new Error((await response.json()).error || response.statusText);
      const range = response.headers.get("X-Hsrecon-Range");
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const probe = new Image();
      probe.src = url;
      await probe.decode();
      if (controller.signal.aborted) {
        URL.revokeObjectURL(url);
        return;
      }
      const old = target.url;
      target.img.src = url;
      target.url = url;
      if (old) URL.revokeObjectURL(old);
      const [lo, hi] = range ? range.split(" ").map(Number) : [null, null];
      hsview.images[slot] = { cube: params.cube, layer: params.layer, band: params.band ?? null, ...region, lo, hi };
      placeImage(slot);
      if (slot === "cube-overview") showRange(lo, hi);
      if (slot === "cube-overview") {
        showStatus("");
        if (!state.scoresAsked.has(params.cube)) {
          state.scoresAsked.add(params.cube); // only now: the scores read both whole files, the first image comes first
          showScores();
        }
      }
      if (slot.endsWith("overview") && !hsview.ready) {
        hsview.ready = true;
        document.body.dataset.ready = "1";
      }
    } catch (error) {
      if (error.name !== "AbortError") {
        target.key = null;
        showStatus(`image: ${error.message}`, true);
      }
    } finally {
      hsview.pending -= 1;
    }
  }

  function clearSlot(slot) {
    const target = slots[slot];
    if (target.controller) target.controller.abort();
    target.key = null;
    delete hsview.images[slot];
    placeImage(slot);
  }

  async function showProgress(forCube) {
    // While a cube's first image is being read (a compressed file: every chunk once), say how far it is.
    if (forCube !== state.cube || (hsview.images["cube-overview"] && hsview.images["cube-overview"].cube === forCube)) return;
    try {
      const answer = await getJSON("api/progress", { cube: forCube });
      if (answer.ready || forCube !== state.cube) return;
      if (answer.rows > 0) showStatus(`reading the whole image once: ${Math.floor((100 * answer.done) / answer.rows)} %`);
    } catch (error) {
      return;
    }
    setTimeout(() => showProgress(forCube), 400);
  }

  function loadOverviews() {
    setTimeout(() => showProgress(state.cube), 400);
    loadImage("cube-overview", layerParams("cube"), overviewRegion());
    if (cube().photo) loadImage("photo-overview", layerParams("photo"), overviewRegion());
    scheduleDetail();
  }

  function scheduleDetail() {
    if (state.detailTimer === null) hsview.pending += 1; // counted from now, so "pending 0" means settled
    else clearTimeout(state.detailTimer);
    state.detailTimer = setTimeout(() => {
      state.detailTimer = null;
      hsview.pending -= 1;
      loadDetail();
    }, DETAIL_DELAY_MS);
  }

  function loadDetail() {
    const region = detailRegion();
    for (const [slot, pane] of [["cube-detail", "cube"], ["photo-detail", "photo"]]) {
      if (region === null || (pane === "photo" && !cube().photo)) clearSlot(slot);
      else loadImage(slot, layerParams(pane), region);
    }
  }

  function showRange(lo, hi) {
    const mapped = state.layer === "band" || state.layer === "mrae";
    $("colorbar").style.visibility = mapped ? "visible" : "hidden";
    if (!mapped) return;
    $("colorbar-lo").textContent = formatValue(lo);
    $("colorbar-hi").textContent = formatValue(hi);
    const stops = state.meta.colormaps[state.cmap];
    $("colorbar-ramp").style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  }

  // --- spectra -------------------------------------------------------------------------------------

  async function fetchSpectrum(x, y) {
    return getJSON("api/spectrum", { cube: state.cube, x, y });
  }

  function requestHover(pixel) {
    state.hoverWanted = pixel;
    if (!state.hoverBusy) pumpHover();
  }

  async function pumpHover() {
    // One request at a time; the latest position wins, so a fast mouse never queues stale requests.
    state.hoverBusy = true;
    try {
      while (state.hoverWanted) {
        const wanted = state.hoverWanted;
        state.hoverWanted = null;
        if (state.hover && state.hover.x === wanted.x && state.hover.y === wanted.y && state.hover.cube === state.cube) continue;
        const spectrum = await fetchSpectrum(wanted.x, wanted.y);
        state.hover = { ...spectrum, cube: state.cube, name: cube().name };
        hsview.hover = state.hover;
        showReadout(state.hover);
        await plotSpectra();
      }
    } catch (error) {
      showStatus(`spectrum: ${error.message}`, true);
    } finally {
      state.hoverBusy = false;
    }
  }

  function showReadout(spectrum) {
    const c = cube();
    const band = state.band;
    const parts = [`x ${spectrum.x}, y ${spectrum.y}`, `${formatNm(c.wavelengths_nm[band])}: ${formatValue(spectrum.values[band])}`];
    if (spectrum.truth) parts.push(`truth ${formatValue(spectrum.truth[band])}`, `pixel MRAE ${formatValue(spectrum.mrae)}`);
    $("readout").textContent = parts.join(" · ");
  }

  async function pin(pixel, startedAt) {
    const spectrum =
      state.hover && state.hover.cube === state.cube && state.hover.x === pixel.x && state.hover.y === pixel.y
        ? state.hover
        : await fetchSpectrum(pixel.x, pixel.y);
    const number = state.nextPin++;
    const entry = {
      pin: number, cube: state.cube, name: cube().name, x: pixel.x, y: pixel.y,
      values: spectrum.values, truth: spectrum.truth, mrae: spectrum.mrae,
      wavelengths: cube().wavelengths_nm, colour: PIN_COLOURS[(number - 1) % PIN_COLOURS.length],
    };
    state.pins.push(entry);
    showReadout(spectrum);
    renderPins();
    placeMarkers();
    await plotSpectra();
    hsview.pins = state.pins.map(({ colour, wavelengths, ...rest }) => rest);
    hsview.lastClickMs = performance.now() - startedAt;
    hsview.clicks += 1;
  }

  function plotSpectra() {
    const traces = [];
    for (const p of state.pins) {
      const label = `#${p.pin} (${p.x}, ${p.y})${p.cube === state.cube ? "" : ` ${p.name}`}`;
      traces.push({ x: p.wavelengths, y: p.values, name: label, meta: { kind: "pin", pin: p.pin }, line: { color: p.colour } });
      if (p.truth) {
        traces.push({ x: p.wavelengths, y: p.truth, name: `#${p.pin} truth`, meta: { kind: "pin-truth", pin: p.pin }, line: { color: p.colour, dash: "dash" } });
      }
    }
    const h = state.hover;
    const pinned = h && state.pins.some((p) => p.cube === h.cube && p.x === h.x && p.y === h.y);
    if (h && h.cube === state.cube && !pinned) {
      const wl = cube().wavelengths_nm;
      traces.push({ x: wl, y: h.values, name: `cursor (${h.x}, ${h.y})`, meta: { kind: "hover" }, line: { color: "#bbbbbb", width: 1.5 } });
      if (h.truth) traces.push({ x: wl, y: h.truth, name: "cursor truth", meta: { kind: "hover-truth" }, line: { color: "#bbbbbb", width: 1.5, dash: "dash" } });
    }
    const layout = {
      margin: { l: 52, r: 10, t: 10, b: 84 },
      paper_bgcolor: "#1f2227", plot_bgcolor: "#15171a", font: { color: "#e6e6e6", size: 11 },
      xaxis: { title: { text: "wavelength (nm)" }, gridcolor: "#333" },
      yaxis: { title: { text: "value" }, gridcolor: "#333", rangemode: "tozero" },
      legend: { orientation: "h", x: 0, y: -0.2, yanchor: "top" }, showlegend: traces.length > 0, uirevision: "keep",
    };
    return Plotly.react($("spectrum-plot"), traces, layout, { displaylogo: false, responsive: true });
  }

  function renderPins() {
    const body = $("pins-table").querySelector("tbody");
    body.replaceChildren();
    for (const p of state.pins) {
      const row = document.createElement("tr");
      const cells = [`#${p.pin}`, p.name, String(p.x), String(p.y), formatValue(p.mrae)];
      cells.forEach((text, i) => {
        const cell = document.createElement("td");
        cell.textContent = text;
        if (i === 0) cell.style.color = p.colour;
        if (i === 4) cell.className = "needs-truth-col";
        row.appendChild(cell);
      });
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "×";
      remove.title = "unpin";
      remove.addEventListener("click", () => {
        state.pins = state.pins.filter((q) => q !== p);
        hsview.pins = state.pins.map(({ colour, wavelengths, ...rest }) => rest);
        renderPins();
        placeMarkers();
        plotSpectra();
      });
      const last = document.createElement("td");
      last.appendChild(remove);
      row.appendChild(last);
      body.appendChild(row);
    }
    $("export-button").disabled = state.pins.length === 0;
    $("clear-button").disabled = state.pins.length === 0;
  }

  function csvField(text) {
    return `"${String(text).replace(/"/g, '""')}"`;
  }

  function pinsCsv() {
    // Wide: one row per wavelength, one column per pinned spectrum (and its truth); values as the file holds them.
    const columns = [];
    for (const p of state.pins) {
      columns.push({ label: `${p.name} x=${p.x} y=${p.y}`, wavelengths: p.wavelengths, values: p.values });
      if (p.truth) columns.push({ label: `${p.name} x=${p.x} y=${p.y} truth`, wavelengths: p.wavelengths, values: p.truth });
    }
    const all = [...new Set(columns.flatMap((c) => c.wavelengths))].sort((a, b) => a - b);
    const lines = [["wavelength_nm", ...columns.map((c) => c.label)].map(csvField).join(",")];
    for (const nm of all) {
      const cells = columns.map((c) => {
        const i = c.wavelengths.indexOf(nm);
        return i < 0 || c.values[i] === null ? "" : String(c.values[i]);
      });
      lines.push([String(nm), ...cells].join(","));
    }
    return lines.join("\n") + "\n";
  }

  function exportCsv() {
    const blob = new Blob([pinsCsv()], { type: "text/csv" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "hsrecon-spectra.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 0);
  }

  // --- scores and file facts ----------------------------------------------------------------------

  async function showScores() {
    const forCube = state.cube;
    const box = $("scores");
    box.hidden = !cube().truth;
    if (!cube().truth) return;
    const table = $("scores-table").querySelector("tbody");
    table.replaceChildren();
    let answer;
    try {
      answer = await getJSON("api/scores", { cube: forCube });
    } catch (error) {
      $("scores-note").textContent = error.message;
      return;
    }
    if (forCube !== state.cube) return;
    if (answer.state === "computing") {
      $("scores-note").textContent = `computing… ${answer.rows_done} of ${answer.rows} rows`;
      setTimeout(showScores, 500);
      return;
    }
    if (answer.state === "failed") {
      $("scores-note").textContent = answer.error;
      return;
    }
    for (const [name, value] of Object.entries(answer.scores)) {
      const row = document.createElement("tr");
      const key = document.createElement("td");
      key.textContent = name;
      const cell = document.createElement("td");
      cell.textContent = typeof value === "number" && !Number.isInteger(value) ? value.toPrecision(6) : String(value);
      row.append(key, cell);
      table.appendChild(row);
    }
    $("scores-note").textContent = `${answer.region}; conventions as in hsrecon eval (docs/metrics.md)`;
    hsview.scores = answer.scores;
  }

  function showInfo() {
    const c = cube();
    const rows = [
      ["file", c.name], ["size", `${c.width} × ${c.height} pixels, ${c.bands} bands`],
      ["wavelengths", `${formatNm(c.wavelengths_nm[0])} – ${formatNm(c.wavelengths_nm[c.bands - 1])}`],
      ["read as", c.layout], ["truth", c.truth || "–"], ["photo", c.photo || "–"],
      ...Object.entries(c.attrs),
    ];
    const body = $("info-table").querySelector("tbody");
    body.replaceChildren();
    for (const [k, v] of rows) {
      const row = document.createElement("tr");
      const a = document.createElement("td");
      const b = document.createElement("td");
      a.textContent = k;
      b.textContent = v;
      row.append(a, b);
      body.appendChild(row);
    }
  }

  // --- controls ------------------------------------------------------------------------------------

  function selectCube(index) {
    state.cube = index;
    const c = cube();
    document.body.classList.toggle("has-truth", Boolean(c.truth));
    document.body.classList.toggle("no-srgb", !c.srgb);
    if (!c.truth && (state.layer === "truth" || state.layer === "mrae")) setLayer("srgb", false);
    if (!c.srgb && (state.layer === "srgb" || state.layer === "truth")) setLayer("band", false);
    $("photo-pane").hidden = !c.photo;
    const slider = $("band-slider");
    slider.max = String(c.bands - 1);
    if (state.band > c.bands - 1) state.band = Math.floor(c.bands / 2);
    slider.value = String(state.band);
    $("band-label").textContent = formatNm(c.wavelengths_nm[state.band]);
    $("cube-title").textContent = c.name;
    $("photo-title").textContent = c.photo || "";
    for (const slot of Object.keys(slots)) clearSlot(slot);
    state.hover = null;
    showInfo();
    fitView();
    loadOverviews();
    $("scores").hidden = !c.truth;
    if (state.scoresAsked.has(index)) showScores();
    placeMarkers();
    plotSpectra();
  }

  function setLayer(layer, reload = true) {
    state.layer = layer;
    for (const input of document.querySelectorAll('input[name="layer"]')) input.checked = input.value === layer;
    document.body.classList.toggle("band-layer", layer === "band");
    document.body.classList.toggle("mrae-layer", layer === "mrae");
    $("band-controls").style.opacity = layer === "band" ? "1" : "0.45";
    if (reload) reloadCubeImages();
  }

  function reloadCubeImages() {
    loadImage("cube-overview", layerParams("cube"), overviewRegion());
    scheduleDetail();
  }

  function bindControls() {
    $("cube-select").addEventListener("change", (e) => selectCube(Number(e.target.value)));
    for (const input of document.querySelectorAll('input[name="layer"]')) {
      input.addEventListener("change", () => input.checked && setLayer(input.value));
    }
    $("band-slider").addEventListener("input", (e) => {
      state.band = Number(e.target.value);
      $("band-label").textContent = formatNm(cube().wavelengths_nm[state.band]);
      if (state.layer !== "band") setLayer("band", false);
      reloadCubeImages();
      if (state.hover) showReadout(state.hover);
    });
    $("colormap-select").addEventListener("change", (e) => {
      state.cmap = e.target.value;
      reloadCubeImages();
    });
    for (const id of ["stretch-low", "stretch-high"]) {
      $(id).addEventListener("change", () => {
        const lo = Number($("stretch-low").value);
        const hi = Number($("stretch-high").value);
        if (!(lo >= 0 && hi <= 100 && lo < hi)) {
          showStatus("stretch: 0 ≤ low < high ≤ 100", true);
          return;
        }
        showStatus("");
        state.plo = lo;
        state.phi = hi;
        reloadCubeImages();
      });
    }
    $("fit-button").addEventListener("click", fitView);
    $("export-button").addEventListener("click", exportCsv);
    $("clear-button").addEventListener("click", () => {
      state.pins = [];
      hsview.pins = [];
      renderPins();
      placeMarkers();
      plotSpectra();
    });
    for (const pane of [$("cube-pane"), $("photo-pane")]) bindPane(pane);
    new ResizeObserver(() => (state.view.fitted ? fitView() : viewChanged())).observe($("panes"));
  }

  function bindPane(pane) {
    let press = null;
    pane.addEventListener("wheel", (e) => {
      e.preventDefault();
      const rect = pane.getBoundingClientRect();
      zoomAt(e.clientX - rect.left, e.clientY - rect.top, Math.exp(-e.deltaY * 0.0015));
    }, { passive: false });
    pane.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      press = { x: e.clientX, y: e.clientY, tx: state.view.tx, ty: state.view.ty, dragging: false };
      pane.setPointerCapture(e.pointerId);
    });
    pane.addEventListener("pointermove", (e) => {
      const rect = pane.getBoundingClientRect();
      if (press) {
        const dx = e.clientX - press.x;
        const dy = e.clientY - press.y;
        if (press.dragging || Math.hypot(dx, dy) > 3) {
          press.dragging = true;
          pane.classList.add("dragging");
          state.view = { ...state.view, tx: press.tx + dx, ty: press.ty + dy, fitted: false };
          viewChanged();
          return;
        }
      }
      const pixel = pixelAtPane(e.clientX - rect.left, e.clientY - rect.top);
      if (pixel) requestHover(pixel);
    });
    pane.addEventListener("pointerup", (e) => {
      if (!press) return;
      const wasDrag = press.dragging;
      const startedAt = performance.now();
      press = null;
      pane.classList.remove("dragging");
      if (wasDrag) return;
      const rect = pane.getBoundingClientRect();
      const pixel = pixelAtPane(e.clientX - rect.left, e.clientY - rect.top);
      if (pixel) pin(pixel, startedAt).catch((error) => showStatus(`spectrum: ${error.message}`, true));
    });
    pane.addEventListener("pointercancel", () => {
      press = null;
      pane.classList.remove("dragging");
    });
  }

  async function start() {
    for (const slot of ["cube-overview", "cube-detail", "photo-overview", "photo-detail"]) {
      slots[slot] = { img: $(slot), controller: null, url: null, key: null };
    }
    showStatus("loading…");
    try {
      state.meta = await getJSON("api/meta");
    } catch (error) {
      showStatus(`cannot reach the viewer's server: ${error.message}`, true);
      return;
    }
    const select = $("cube-select");
    state.meta.cubes.forEach((c, i) => {
      const option = document.createElement("option");
      option.value = String(i);
      option.textContent = c.name;
      select.appendChild(option);
    });
    select.disabled = state.meta.cubes.length < 2;
    for (const name of Object.keys(state.meta.colormaps)) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      $("colormap-select").appendChild(option);
    }
    state.band = Math.floor(state.meta.cubes[0].bands / 2);
    bindControls();
    setLayer("srgb", false);
    selectCube(0);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
