// The clipsearch page: a thin client of the JSON API (see clipsearch_web/app.py). No build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, preview: null };
// The API's filter parameters (web/app.py `_where`), each edited in the field `f-NAME`.
const FILTERS = ["under", "glob", "after", "before", "min_size", "sort"];

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

async function call(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (e) {
    throw new Error(`the server cannot be reached (${e.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!response.ok) {
    throw new Error(body && body.error ? body.error : `the server answered ${response.status}`);
  }
  return body;
}

// The filters set in the page, as query parameters (sort=score, the default, is left out).
function filterParams() {
  const params = {};
  for (const name of FILTERS) {
    const value = $(`f-${name}`).value.trim();
    if (value && !(name === "sort" && value === "score")) params[name] = value;
  }
  return params;
}

function showFilterCount() {
  const n = Object.keys(filterParams()).length;
  $("filter-count").textContent = n ? ` (${n} set)` : "";
}

function setFilters(params) {
  for (const name of FILTERS) {
    const field = $(`f-${name}`);
    const value = params.get(name) || "";
    if (field.tagName === "SELECT") {
      field.value = Array.from(field.options).some((o) => o.value === value) ? value : "score";
    } else {
      field.value = value;
    }
  }
  showFilterCount();
  if (Object.keys(filterParams()).length) $("filters").open = true;
}

async function run(label, request) {
  showError("");
  $("status").textContent = "Searching…";
  document.body.classList.add("busy");
  const filtered = Object.keys(filterParams()).length > 0;
  try {
    render(await request(), label, filtered);
  } catch (e) {
    $("status").textContent = "";
    showError(e.message);
  } finally {
    document.body.classList.remove("busy");
  }
}

function captionOf(result) {
  return result.captions && result.captions.length ? result.captions[0] : result.path.split("/").pop();
}

function render(data, label, filtered) {
  const grid = $("results");
  grid.replaceChildren();
  for (const result of data.results) {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "result";
    card.dataset.id = result.id;
    card.title = result.path;
    const img = document.createElement("img");
    img.src = result.thumbnail_url;
    img.alt = captionOf(result);
    img.decoding = "async";
    const text = document.createElement("span");
    text.className = "caption";
    const score = document.createElement("b");
    score.textContent = `${result.rank} · ${result.score.toFixed(3)}`;
    text.append(score, " ", captionOf(result));
    card.append(img, text);
    card.addEventListener("click", () => openDetail(result));
    grid.append(card);
  }
  const n = data.results.length;
  $("status").textContent = n
    ? `${n} result${n === 1 ? "" : "s"} for ${label} in ${Math.round(data.took_ms)} ms`
    : filtered
      ? `No results for ${label} with these filters.`
      : `No results for ${label}: the index is empty.`;
}

function searchText(text, push) {
  const params = new URLSearchParams({ q: text, k: $("k").value, ...filterParams() });
  if (push) {
    const url = new URL(location.href);
    url.search = params.toString();
    history.pushState({}, "", url);
  }
  return run(`“${text}”`, () => call(`/api/search?${params}`));
}

function searchImage(file, text) {
  const form = new FormData();
  form.append("image", file, file.name || "image");
  if (text) form.append("q", text);
  form.append("k", $("k").value);
  const label = text ? `${file.name} and “${text}”` : `pictures like ${file.name}`;
  const params = new URLSearchParams(filterParams());
  return run(label, () => call(`/api/search?${params}`, { method: "POST", body: form }));
}

function similar(result) {
  const label = `pictures like ${result.path.split("/").pop()}`;
  const params = new URLSearchParams({ k: $("k").value, ...filterParams() });
  return run(label, () => call(`/api/similar/${result.id}?${params}`));
}

function submit() {
  const text = $("q").value.trim();
  if (state.file) return searchImage(state.file, text);
  if (text) return searchText(text, true);
  showError("Type what to look for, or choose or drop a picture.");
  return Promise.resolve();
}

// A new picture starts a new search: the words of the last one would silently steer it.
// Words typed afterwards refine it (picture and words together).
function chooseFile(file) {
  if (!file) return;
  clearFile();
  $("q").value = "";
  state.file = file;
  state.preview = URL.createObjectURL(file);
  $("chosen-img").src = state.preview;
  $("chosen-name").textContent = file.name;
  $("chosen").hidden = false;
  submit();
}

function clearFile() {
  if (state.preview) URL.revokeObjectURL(state.preview);
  state.file = state.preview = null;
  $("chosen").hidden = true;
  $("file").value = "";
}

function openDetail(result) {
  const dialog = $("detail");
  $("detail-img").src = `${result.thumbnail_url}?size=1024`;
  $("detail-img").alt = captionOf(result);
  $("detail-title").textContent = `#${result.rank} · score ${result.score.toFixed(3)}`;
  const list = $("detail-captions");
  list.replaceChildren();
  for (const caption of result.captions || []) {
    const item = document.createElement("li");
    item.textContent = caption;
    list.append(item);
  }
  $("detail-path").textContent = result.path;
  $("original").href = `/image/${result.id}`;
  $("more").onclick = () => {
    dialog.close();
    similar(result);
  };
  dialog.showModal();
}

function dragHasFile(event) {
  return event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");
}

function start() {
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  $("file").addEventListener("change", () => chooseFile($("file").files[0]));
  $("clear-image").addEventListener("click", clearFile);
  $("filters").addEventListener("input", showFilterCount);
  $("clear-filters").addEventListener("click", () => {
    setFilters(new URLSearchParams());
    $("f-under").focus();
  });
  $("detail").addEventListener("click", (event) => {
    if (event.target === $("detail")) $("detail").close(); // a click on the backdrop
  });
  let depth = 0;
  window.addEventListener("dragenter", (event) => {
    if (!dragHasFile(event)) return;
    depth += 1;
    $("drop").hidden = false;
  });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) $("drop").hidden = true;
  });
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    $("drop").hidden = true;
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) chooseFile(file);
  });
  window.addEventListener("paste", (event) => {
    const file = event.clipboardData && event.clipboardData.files[0];
    if (file) chooseFile(file);
  });
  window.addEventListener("popstate", fromLocation);
  fromLocation();
}

function fromLocation() {
  const params = new URLSearchParams(location.search);
  const k = params.get("k");
  if (k && Array.from($("k").options).some((o) => o.value === k)) $("k").value = k;
  setFilters(params);
  const text = params.get("q");
  if (text) {
    $("q").value = text;
    searchText(text, false);
  }
}

start();
