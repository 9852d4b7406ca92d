// The VM console page: opens the selected VMs through socketlet and shows their progress.
//
// The connection goes to the page's own origin (nginx sends /socket.io/ to socketlet), so the
// browser sends Django's session cookie with it and socketlet's connect hook (a Django view)
// knows the user. `?transports=polling` (or `websocket`) picks the transports, for old browsers
// and for the tests; the default is the client's: polling, then an upgrade to WebSocket.
(() => {
  "use strict";

  const TERMINAL = new Set(["done", "failed"]);
  const params = new URLSearchParams(location.search);
  const transports = (params.get("transports") || "polling,websocket").split(",");

  const rows = new Map();
  for (const row of document.querySelectorAll("#vms tbody tr")) rows.set(row.dataset.vm, row);
  const openButton = document.getElementById("open");
  const connection = document.getElementById("connection");
  const summary = document.getElementById("summary");

  // What the page saw, for people (the log) and for the tests (window.vmConsole).
  const stats = {
    connects: 0,
    progress: 0,
    responses: 0,
    responsesAfterReconnect: 0,
    resyncs: 0,
    recovered: 0,
    foreign: 0,
    refused: null,
    lastResultAt: null,
    events: [],
  };
  window.vmConsole = { stats };

  function log(text) {
    const li = document.createElement("li");
    li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
    document.getElementById("log").prepend(li);
  }

  function setConnection(state, text) {
    connection.dataset.state = state;
    connection.textContent = text;
  }

  function render(row) {
    const fraction = Number(row.dataset.fraction) || 0;
    const bar = row.querySelector("[role=progressbar]");
    bar.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
    bar.firstElementChild.style.width = `${Math.round(fraction * 100)}%`;
  }

  /** Shows a job's state in its VM's row. `fromServer`: the database's word, after a resync. */
  function apply(job, fromServer = false) {
    const row = rows.get(job.vm);
    if (!row) {
      stats.foreign += 1; // never happens: a user's room gets that user's jobs only
      log(`an event for a VM that is not on this page: ${job.vm}`);
      return;
    }
    const current = row.dataset.job;
    if (current !== job.id) {
      // A job this page asked for whose ack has not come back yet, or the database's latest.
      if (row.dataset.status !== "requested" && !fromServer) return;
      row.dataset.job = job.id;
    } else if (TERMINAL.has(row.dataset.status) && !TERMINAL.has(job.state)) {
      return; // an older word about a job already finished
    }
    row.dataset.status = job.state;
    row.dataset.fraction = String(job.fraction ?? 0);
    row.dataset.worker = job.worker || "";
    let line = job.text || job.state;
    if (job.state === "failed") line = `failed: ${job.error}`;
    else if (job.state === "done") line = `open at ${job.result.address} (${job.result.worker})`;
    else if (job.worker) line = `${line} (${job.worker})`;
    row.querySelector(".line").textContent = line;
    render(row);
    updateSummary();
  }

  let batch = []; // the VMs of the last Open
  function updateSummary() {
    if (batch.length === 0) return;
    const states = batch.map((name) => rows.get(name).dataset.status);
    if (!states.every((s) => TERMINAL.has(s))) {
      summary.textContent = `${states.filter((s) => TERMINAL.has(s)).length} of ${batch.length} finished`;
      return;
    }
    const done = states.filter((s) => s === "done").length;
    summary.textContent = `${done} of ${batch.length} open` +
      (done < batch.length ? `, ${batch.length - done} failed` : "");
    if (stats.lastResultAt === null) stats.lastResultAt = Date.now();
  }

  function refreshButton() {
    const any = [...document.querySelectorAll("input[name=vm]")].some((c) => c.checked);
    openButton.disabled = !(socket.connected && any);
  }

  async function resync() {
    stats.resyncs += 1;
    try {
      const answer = await (await fetch("/jobs/", { credentials: "same-origin" })).json();
      for (const job of answer.jobs) apply(job, true);
      log(`read the state of ${answer.jobs.length} jobs again`);
    } catch (err) {
      log(`could not read the jobs' state: ${err}`);
    }
  }

  const socket = io({ transports, reconnectionDelay: 500, reconnectionDelayMax: 2000 });
  window.socket = socket;

  socket.on("connect", () => {
    stats.connects += 1;
    stats.refused = null;
    const engine = socket.io.engine;
    setConnection("connected", `Connected over ${engine.transport.name}`);
    engine.once("upgrade", (t) => setConnection("connected", `Connected over ${t.name}`));
    if (socket.recovered) {
      // socketlet kept this socket (--recovery-secs) and has sent what it missed meanwhile.
      stats.recovered += 1;
      log(`connection recovered (socket ${socket.id}): nothing was missed`);
    } else {
      log(`connected (${engine.transport.name}, socket ${socket.id})`);
      // A new socket: whatever was sent while the page was away is in the database.
      if (stats.connects > 1) resync();
    }
    refreshButton();
  });

  socket.on("disconnect", (reason) => {
    setConnection("lost", `Connection lost (${reason}); reconnecting…`);
    log(`disconnected: ${reason}`);
    refreshButton();
  });

  socket.on("connect_error", (err) => {
    if (socket.active) {
      setConnection("lost", `Cannot reach the server (${err.message}); retrying…`);
      return;
    }
    // Refused by the connect hook: it will not get better by retrying.
    stats.refused = err.message;
    setConnection("refused", `Refused: ${err.message}`);
    if (err.data && err.data.login) {
      const a = document.createElement("a");
      a.href = err.data.login;
      a.textContent = " Log in again";
      connection.append(a);
    }
    log(`refused: ${err.message}`);
  });

  function record(event, job) {
    stats.events.push({ event, id: job.id, vm: job.vm, state: job.state, worker: job.worker,
      fraction: job.fraction, connects: stats.connects, at: Date.now() });
  }

  socket.on("vm_progress", (job) => {
    stats.progress += 1;
    record("vm_progress", job);
    apply(job);
  });

  socket.on("vm_response", (job) => {
    stats.responses += 1;
    if (stats.connects > 1) stats.responsesAfterReconnect += 1;
    record("vm_response", job);
    apply(job);
    log(`${job.vm}: ${job.state}${job.error ? ` (${job.error})` : ""}`);
  });

  document.getElementById("vms").addEventListener("change", refreshButton);

  document.getElementById("open-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const boxes = [...document.querySelectorAll("input[name=vm]:checked")];
    const names = boxes.map((c) => c.value);
    if (names.length === 0) return;
    batch = names;
    stats.lastResultAt = null;
    summary.textContent = "";
    for (const box of boxes) box.checked = false;
    for (const name of names) {
      const row = rows.get(name);
      row.dataset.status = "requested";
      row.dataset.fraction = "0";
      row.querySelector(".line").textContent = "sending…";
      render(row);
    }
    refreshButton();
    socket.timeout(10_000).emit("open_vms", { vms: names }, (err, answer) => {
      if (err || answer.error) {
        const why = err ? "no answer from the server" : answer.error.message;
        for (const name of names) {
          const row = rows.get(name);
          if (row.dataset.status === "requested") {
            row.dataset.status = "failed";
            row.querySelector(".line").textContent = `not sent: ${why}`;
          }
        }
        log(`open_vms refused: ${why}`);
        return;
      }
      for (const { id, vm } of answer.jobs) {
        const row = rows.get(vm);
        if (row.dataset.status === "requested") {
          row.dataset.job = id;
          row.dataset.status = "queued";
          row.querySelector(".line").textContent = "queued";
        }
      }
      if (answer.busy.length > 0) {
        log(`already opening: ${answer.busy.join(", ")}`);
        batch = batch.filter((vm) => !answer.busy.includes(vm));
        resync();
      }
      log(`sent ${answer.jobs.length} VMs to the workers`);
    });
  });

  for (const row of rows.values()) render(row);
})();
