// The reports the gateway keeps: each shift's, day's, week's and month's, newest first.
"use strict";

document.addEventListener("alpine:init", () => {
  Alpine.data("reports", () => ({
    ...LG.accountPage(),
    items: [],
    loaded: false,

    async start() {
      if (await this.ensureSignedIn()) this.load();
    },

    signedIn() {
      this.load();
    },

    async load() {
      const { status, data } = await LG.api("GET", "/api/reports");
      this.items = status === 200 ? data : [];
      this.loaded = true;
    },

    of(kind) {
      return this.items.filter((r) => r.kind === kind);
    },

    pct(ratio) {
      return ratio === null || ratio === undefined ? "–" : `${(ratio * 100).toFixed(1)}%`;
    },
  }));
});
