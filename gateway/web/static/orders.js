// The order lookup: "where is my order, and when will it ship?"
"use strict";

document.addEventListener("alpine:init", () => {
  Alpine.data("orders", () => ({
    ...LG.accountPage(),
    q: new URLSearchParams(location.search).get("q") || "",
    matches: [],
    detail: null,
    searched: false,
    stream: null,

    async start() {
      if ((await this.ensureSignedIn()) && this.q) this.search();
    },

    signedIn() {
      if (this.q) this.search();
    },

    async search() {
      const q = this.q.trim();
      if (!q) return;
      const url = new URL(location.href);
      url.searchParams.set("q", q);
      history.replaceState(null, "", url.toString());
      const { status, data } = await LG.api("GET", `/api/orders?q=${encodeURIComponent(q)}`);
      this.searched = true;
      this.detail = null;
      this.matches = status === 200 ? data : [];
      if (this.matches.length === 1) this.open(this.matches[0].order_id);
    },

    async open(orderId) {
      if (this.stream) this.stream.stop();
      const { status, data } = await LG.api("GET", `/api/orders/${encodeURIComponent(orderId)}`);
      this.detail = status === 200 ? data : null;
      if (!this.detail) return;
      // Kept current while it is open: customer service sees the order move.
      this.stream = LG.live(`/api/orders/${encodeURIComponent(orderId)}/live`, (snapshot) => {
        if (snapshot.found && snapshot.order_id === orderId) this.detail = snapshot;
      }, () => {});
    },
  }));
});
