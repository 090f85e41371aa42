// The line board: every station at a glance, the flow of orders, the day so far.
"use strict";

document.addEventListener("alpine:init", () => {
  Alpine.data("board", (kiosk) => ({
    ...LG.accountPage(),
    lang: LG.lang,
    kiosk,
    b: null,
    link: "reconnecting",
    canAck: false,

    async start() {
      if (await this.ensureSignedIn()) this.signedIn();
    },

    signedIn() {
      const role = this.me && this.me.role;
      this.canAck = !this.kiosk && (role === "line_lead" || role === "admin");
      LG.live("/api/board/live", (snapshot) => (this.b = snapshot), (state) => {
        if (state === "denied") {
          this.needsSignIn = true;
          return;
        }
        this.link = state;
      });
    },

    async ack(alarmId) {
      const { status, data } = await LG.api("POST", `/api/alarms/${encodeURIComponent(alarmId)}/ack`);
      if (status >= 300) alert(LG.words(data).message);
    },

    ratio(r) {
      if (!r || r.denominator === undefined) return "";
      return `${r.numerator}/${r.denominator}`;
    },

    // The bottleneck's sentence in the page's language (the gateway says it in both).
    bottleneckWords() {
      const found = this.b && this.b.bottleneck;
      if (!found) return "";
      return this.lang === "zh-CN" ? found.words.zh : found.words.en;
    },

    flow() {
      const order = ["waiting_material", "queued", "in_process", "packing", "completed"];
      const flow = (this.b && this.b.flow) || {};
      return order.map((s) => [s, flow[s] || 0]);
    },

    barHeight(n) {
      const hours = (this.b && this.b.output_by_hour) || [];
      const top = Math.max(1, ...hours.map((h) => Math.max(h.done || 0, h.planned || 0)));
      return ((n || 0) / top) * 100;
    },

    ganttStyle(t) {
      const start = new Date(this.b.as_of).getTime();
      const span = (this.b.gantt_hours || 4) * 3600 * 1000;
      const a = Math.max(0, (new Date(t.start).getTime() - start) / span);
      const z = Math.min(1, (new Date(t.end).getTime() - start) / span);
      return `left:${a * 100}%;width:${Math.max(0.4, (z - a) * 100)}%`;
    },
  }));
});
