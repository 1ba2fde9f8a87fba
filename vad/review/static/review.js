// VAD review: keyboard-first actions on the record page.
// No inline script (the Content-Security-Policy forbids it) and no innerHTML: record text is untrusted, so
// everything from the server is put into the page with textContent.
(function () {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  const rec = $("#record");
  const help = $("#help");
  const guide = $("#guide");
  let mode = "view"; // view | reject | edit
  let previewed = null; // the edit fields the shown diff was made for: saving needs a diff of exactly these

  function flash(msg, isError) {
    const el = $("#flash");
    if (!el || !msg) return;
    el.textContent = msg;
    el.className = isError ? "error" : "";
    el.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { el.hidden = true; }, isError ? 6000 : 1500);
  }

  async function post(url, body) {
    let r, data;
    try {
      r = await fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      data = await r.json();
    } catch (e) {
      data = { ok: false, error: String(e) };
    }
    if (!r || !r.ok || !data.ok) {
      flash(data.error || ("HTTP " + (r ? r.status : "?")), true);
      return null;
    }
    return data;
  }

  function base() {
    return { id: rec.dataset.id, sha256: rec.dataset.sha, query: rec.dataset.query };
  }

  function go(url, msg) {
    if (msg) sessionStorage.setItem("vad-flash", msg);
    location.assign(url);
  }

  async function decide(decision, extra) {
    const data = await post("/api/decide", Object.assign(base(), { decision: decision }, extra || {}));
    if (data) go(data.next, data.message);
  }

  async function undo() {
    const data = await post("/api/undo", base());
    if (data) go(data.next, rec.dataset.msgUndone);
  }

  // --- panels ------------------------------------------------------------------------------------------------
  function show(panel) {
    $("#reject-panel").hidden = panel !== "reject";
    $("#edit-panel").hidden = panel !== "edit";
    mode = panel || "view";
  }

  function openReject() {
    show("reject");
    const first = document.querySelector("#reasons input:checked") || document.querySelector("#reasons input");
    if (first) first.focus();
    // digits pick a reason; the radio keeps focus so typing a note is one Tab away
  }

  function pickReason(n) {
    const radios = document.querySelectorAll("#reasons input");
    if (n >= 1 && n <= radios.length) {
      radios[n - 1].checked = true;
      radios[n - 1].focus();
    }
  }

  function saveReject() {
    const r = document.querySelector("#reasons input:checked");
    if (!r) { flash(rec.dataset.msgPickReason, true); return; }
    decide("reject", { reason: r.value, note: $("#reject-note").value });
  }

  function openEdit(focusId) {
    show("edit");
    const el = $("#" + focusId);
    el.focus();
    if (el.setSelectionRange) el.setSelectionRange(el.value.length, el.value.length);
  }

  function editFields() {
    return {
      instruction: $("#e-instruction").value, input: $("#e-input").value, output: $("#e-output").value,
      categorization: $("#e-cat").value,
    };
  }

  async function preview() {
    const fields = editFields();
    const data = await post("/api/diff", Object.assign(base(), { fields: fields }));
    if (!data) return;
    const body = $("#diff-body");
    body.replaceChildren();
    $("#diff").hidden = false;
    const save = document.querySelector("[data-action=edit-save]");
    if (data.none) {
      body.textContent = rec.dataset.msgNoChange;
      save.disabled = true;
      previewed = null;
      return;
    }
    for (const [field, ops] of Object.entries(data.changed)) {
      const div = document.createElement("div");
      div.className = "field";
      div.dataset.field = field;
      const label = document.createElement("b");
      label.textContent = (rec.dataset["label" + field[0].toUpperCase() + field.slice(1)] || field) + "：";
      div.appendChild(label);
      for (const [op, text] of ops) {
        const el = document.createElement(op === "-" ? "del" : op === "+" ? "ins" : "span");
        el.textContent = text;
        div.appendChild(el);
      }
      body.appendChild(div);
    }
    save.disabled = false;
    previewed = JSON.stringify(fields);
  }

  function saveEdit() {
    const fields = editFields();
    if (previewed !== JSON.stringify(fields)) return preview(); // the diff must be seen before saving
    decide("edit", { fields: fields, note: $("#edit-note").value });
  }

  function toggle(el) { if (el) el.hidden = !el.hidden; }

  function cancel() {
    if (help && !help.hidden) { help.hidden = true; return; }
    if (guide && !guide.hidden) { guide.hidden = true; return; }
    if (mode !== "view") {
      show(null);
      document.activeElement && document.activeElement.blur();
    }
  }

  const actions = {
    accept: () => decide("accept"),
    reject: openReject,
    "reject-save": saveReject,
    edit: () => openEdit("e-instruction"),
    categorize: () => openEdit("e-cat"),
    preview: preview,
    "edit-save": saveEdit,
    skip: () => decide("skip"),
    undo: undo,
    cancel: cancel,
    help: () => toggle(help),
    guide: () => toggle(guide),
    next: () => { if (rec.dataset.next) go(rec.dataset.next); },
    prev: () => { if (rec.dataset.prev) go(rec.dataset.prev); },
  };
  const keys = { a: "accept", r: "reject", e: "edit", c: "categorize", s: "skip", u: "undo", j: "next",
                 arrowright: "next", k: "prev", arrowleft: "prev", g: "guide" };

  document.addEventListener("click", (e) => {
    const b = e.target.closest("[data-action]");
    if (!b || b.disabled) return;
    const f = actions[b.dataset.action];
    if (f && (rec || b.dataset.action === "help")) { e.preventDefault(); f(); }
  });

  document.addEventListener("keydown", (e) => {
    // While an input method is composing (pinyin → 汉字), every key belongs to it.
    if (e.isComposing || e.keyCode === 229) return;
    if (e.key === "Escape") { cancel(); return; }
    const inField = /^(TEXTAREA|INPUT|SELECT)$/.test(e.target.tagName) && e.target.type !== "radio";
    if (rec && (e.ctrlKey || e.metaKey) && e.key === "Enter") {
      e.preventDefault();
      if (mode === "edit") saveEdit();
      else if (mode === "reject") saveReject();
      return;
    }
    if (inField || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "?") { e.preventDefault(); toggle(help); return; }
    if (!rec) return;
    if (mode === "reject") {
      if (/^[1-9]$/.test(e.key)) { e.preventDefault(); pickReason(Number(e.key)); }
      else if (e.key === "Enter") { e.preventDefault(); saveReject(); }
      return;
    }
    if (mode !== "view") return;
    const name = keys[e.key.toLowerCase()];
    if (name) { e.preventDefault(); actions[name](); }
  });

  const msg = sessionStorage.getItem("vad-flash");
  if (msg) { sessionStorage.removeItem("vad-flash"); flash(msg); }
})();
