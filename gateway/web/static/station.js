// The station terminal: one operator, one task, one step at a time.
"use strict";

document.addEventListener("alpine:init", () => {
  const reasons = JSON.parse(document.getElementById("lg-reasons").textContent);

  Alpine.data("station", (stationId) => ({
    stationId,
    lang: LG.lang,
    view: null,
    link: "reconnecting",
    banner: null,
    bannerTimer: null,
    dialog: null,
    needsPairing: false,
    pairCode: "",
    scanText: "",
    manualWeight: "",
    busy: false,
    queue: [],
    stream: null,

    key() {
      return `linegate.terminal.${this.stationId}`;
    },

    async start() {
      const params = new URLSearchParams(location.search);
      const code = params.get("pair");
      if (code) {
        params.delete("pair");
        const rest = params.toString();
        history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : ""));
        await this.pair(code);
        return;
      }
      LG.auth.bearer = localStorage.getItem(this.key());
      if (!LG.auth.bearer) {
        this.needsPairing = true;
        return;
      }
      this.connect();
    },

    async pair(code) {
      const name = `${this.stationId} ${navigator.userAgent.includes("Android") ? "PDA" : "browser"}`;
      const { status, data } = await LG.api("POST", "/api/terminals/claim", { code: code.trim(), name }, { retry: false });
      if (status !== 200 || data.station !== this.stationId) {
        this.needsPairing = true;
        this.show(false, data.station && data.station !== this.stationId
          ? { message: `→ ${data.station}`, next: "" }
          : data);
        return;
      }
      localStorage.setItem(this.key(), data.credential);
      LG.auth.bearer = data.credential;
      this.needsPairing = false;
      this.show(true, { message: LG.t("paired"), next: "" });
      this.connect();
    },

    connect() {
      this.stream = LG.live(`/api/stations/${this.stationId}/live`, (snapshot) => {
        const first = this.view === null;
        const before = this.view ? this.view.operator : null;
        this.view = snapshot;
        // Each operator reads the terminal in their own language: a sign-in that brings
        // another language reloads the page in it (its chrome comes from the gateway).
        if (snapshot.operator && snapshot.operator !== before && snapshot.language !== this.lang && !new URLSearchParams(location.search).has("lang")) {
          LG.switchLanguage(snapshot.language);
          return;
        }
        this.deviceWord(snapshot.device_message);
        // The scanner types into whatever has the focus: give it to the scan field once
        // the page shows it, and whenever nothing else holds it.
        if (first || document.activeElement === document.body) {
          this.$nextTick(() => setTimeout(() => this.focusScan(), 0));
        }
      }, (state, data) => {
        if (state === "denied") {
          // Unpaired, withdrawn or moved to another station: pair again.
          localStorage.removeItem(this.key());
          LG.auth.bearer = null;
          this.needsPairing = true;
          this.show(false, data || {});
          return;
        }
        this.link = state;
      });
    },

    // What a device of the station did (the station's own scanner, the scale): shown like
    // an answer to the page's own action, once.
    lastDeviceSeq: null,
    deviceWord(msg) {
      if (!msg) return;
      if (this.lastDeviceSeq === null) {
        this.lastDeviceSeq = msg.seq;
        return;
      }
      if (msg.seq === this.lastDeviceSeq) return;
      this.lastDeviceSeq = msg.seq;
      this.show(msg.ok, msg);
    },

    linkText() {
      if (this.busyWaiting) return LG.t("offline_sending");
      return this.link === "live" ? `● ${LG.t("live")}` : `○ ${LG.t("reconnecting")}`;
    },
    busyWaiting: false,

    show(ok, answer) {
      const w = LG.words(answer);
      clearTimeout(this.bannerTimer);
      this.banner = { kind: ok ? "ok" : "error", message: w.message, next: ok ? "" : w.next };
      LG.beep(ok);
      // A success is a short confirmation; a refusal stays until the next action.
      if (ok) this.bannerTimer = setTimeout(() => (this.banner = null), 2500);
    },

    // Actions go one at a time, in the order they were made; each keeps its id while
    // it is retried, so a lost answer never does it twice.
    async act(action, body, pin) {
      if (this.busy) {
        this.queue.push([action, body, pin]);
        return;
      }
      this.busy = true;
      try {
        const { status, data } = await LG.api("POST", `/api/stations/${this.stationId}/${action}`, body, {
          pin,
          onWaiting: (waiting) => (this.busyWaiting = waiting),
        });
        this.busyWaiting = false;
        if (status === 401 && (data.code === "PIN_REQUIRED" || data.code === "WRONG_PIN")) {
          if (data.code === "WRONG_PIN") this.show(false, data);
          this.dialog = { kind: "pin", pin: "", then: [action, body] };
          return;
        }
        if (status === 401 && data.code && data.code.startsWith("TERMINAL")) {
          localStorage.removeItem(this.key());
          this.needsPairing = true;
        }
        this.show(status < 300 && data.ok !== false, data);
      } finally {
        this.busy = false;
        this.focusScan();
        const queued = this.queue.shift();
        if (queued) this.act(...queued);
      }
    },

    submitScan() {
      const code = this.scanText.trim();
      this.scanText = "";
      if (code) this.act("scan", { code });
    },

    ask(kind) {
      this.dialog = { kind, reason: "", disposition: "scrap", pin: "" };
      this.$nextTick(() => {
        const input = document.querySelector("[data-test=reason]");
        if (input) input.focus();
      });
    },

    confirm() {
      const d = this.dialog;
      if (!d) return;
      if (d.kind === "pin") {
        this.dialog = null;
        this.act(d.then[0], d.then[1], d.pin);
        return;
      }
      const reason = (d.reason || "").trim();
      if (!reason) {
        this.show(false, { message: LG.t("reason_required"), next: "" });
        return;
      }
      this.dialog = null;
      if (d.kind === "fail") this.act("fail", { reason, disposition: d.disposition });
      else this.act(d.kind, { reason });
    },

    dialogTitle() {
      return this.dialog ? reasons.titles[this.dialog.kind] : "";
    },
    reasons() {
      return this.dialog ? reasons[this.dialog.kind] || [] : [];
    },

    // Which buttons make sense now (the gateway decides; this only hides the pointless).
    can(action) {
      const v = this.view;
      if (!v || !v.operator) return false;
      const task = v.task;
      const status = task ? task.status : null;
      switch (action) {
        case "start":
          return status === "dispatched";
        case "next":
          return !task && v.queue.length > 0;
        case "pause":
          return status === "running";
        case "resume":
          return status === "paused";
        case "complete":
        case "fail":
          return status === "running";
        case "reprint":
          return !!(task && task.label_id);
      }
      return false;
    },

    shortcut(e) {
      const keys = { F2: "start", F3: null, F4: "complete", F6: "next", F8: "fail", F9: "reprint", F10: "logout" };
      if (!(e.key in keys) || this.dialog || this.needsPairing) return;
      e.preventDefault();
      if (e.key === "F3") {
        if (this.can("pause")) this.ask("pause");
        else if (this.can("resume")) this.act("resume");
        return;
      }
      const action = keys[e.key];
      if (action === "fail" || action === "reprint") {
        if (this.can(action)) this.ask(action);
      } else if (action === "logout" || this.can(action)) {
        this.act(action);
      }
    },

    // The scanner types into the focused field: keep the scan field focused, unless the
    // operator is typing somewhere else on purpose.
    refocus(e) {
      if (e.target.closest("input, textarea, select, .dialog")) return;
      this.focusScan();
    },
    focusScan(tries = 20) {
      if (this.dialog) return;
      const input = this.$refs.scan;
      if (!input || document.activeElement === input) return;
      // Not shown yet (the page is still drawing its first view): try again shortly.
      if (input.offsetParent === null) {
        if (tries > 0) setTimeout(() => this.focusScan(tries - 1), 50);
        return;
      }
      input.focus();
    },

    personalText() {
      const p = this.view && this.view.task && this.view.task.personalization;
      if (!p) return "";
      return p.text || p.engrave_text || p.name || "";
    },
    params() {
      const t = this.view && this.view.task;
      // The operation's own parameters (thread colour, font, fixture): the text is above.
      const shown = Object.assign({}, (t && (t.params || t.personalization)) || {});
      delete shown.text;
      return Object.entries(shown).filter(([, v]) => v !== null && v !== undefined && v !== "");
    },
    steps() {
      const t = this.view && this.view.task;
      if (!t) return [];
      const i18n = t.instructions_i18n || {};
      return i18n[this.lang] || i18n[this.lang.slice(0, 2)] || t.instructions || [];
    },
    caption(m) {
      const c = m.caption_i18n || {};
      return c[this.lang] || c[this.lang.slice(0, 2)] || m.caption || "";
    },

    // The weighing: the live reading against the tolerance band.
    band() {
      const t = this.view && this.view.task;
      if (!t || !t.expected_weight_g) return null;
      return [t.expected_weight_g - t.tolerance_g, t.expected_weight_g + t.tolerance_g];
    },
    reading() {
      const s = this.view && this.view.scale;
      if (s && s.online && s.grams !== undefined) return s.grams;
      const t = this.view && this.view.task;
      return t && t.weight_g !== null && t.weight_g !== undefined ? t.weight_g : null;
    },
    readingText() {
      const s = this.view && this.view.scale;
      if (s && !s.online) return LG.t("scale_offline");
      const r = this.reading();
      return r === null ? LG.t("waiting_weight") : `${r.toFixed(1)} g`;
    },
    readingClass() {
      const b = this.band();
      const r = this.reading();
      if (!b || r === null) return "";
      return r >= b[0] && r <= b[1] ? "in-band" : "out-band";
    },
    bandText() {
      const b = this.band();
      return b ? `${b[0].toFixed(0)}–${b[1].toFixed(0)} g` : "";
    },
    scaleRange() {
      const b = this.band();
      const span = (b[1] - b[0]) * 2 || 10;
      return [b[0] - span, b[1] + span];
    },
    bandStyle() {
      const b = this.band();
      if (!b) return "";
      const [lo, hi] = this.scaleRange();
      return `left:${((b[0] - lo) / (hi - lo)) * 100}%;width:${((b[1] - b[0]) / (hi - lo)) * 100}%`;
    },
    needleStyle() {
      const r = this.reading();
      if (r === null || !this.band()) return "";
      const [lo, hi] = this.scaleRange();
      const at = Math.min(100, Math.max(0, ((r - lo) / (hi - lo)) * 100));
      return `left:${at}%`;
    },
  }));
});
