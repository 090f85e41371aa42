// "Can we take this promotion?": a line lead's forecast against the line's capacity
// (POST /api/capacity). The forecast goes to the gateway as it was pasted or read from
// its file, unparsed: the gateway checks it by intake's rules and says what is wrong.
"use strict";

document.addEventListener("alpine:init", () => {
  Alpine.data("capacity", () => ({
    ...LG.accountPage(),
    text: "",
    fileName: "",
    busy: false,
    error: "",
    answer: null,

    async start() {
      await this.ensureSignedIn();
    },

    async pick(event) {
      const file = event.target.files[0];
      if (!file) return;
      this.text = await file.text();
      this.fileName = file.name;
    },

    async check() {
      const body = this.text.trim();
      if (!body) {
        this.error = this.$root.dataset.empty;
        return;
      }
      this.busy = true;
      this.error = "";
      this.answer = null;
      try {
        // Not LG.api: the body is sent as it is, and a check is not retried by itself
        // (it takes seconds of the worker's time; the lead asks again if need be).
        const response = await fetch(`/api/capacity?lang=${encodeURIComponent(LG.lang)}`, {
          method: "POST",
          headers: {
            ...LG.auth.headers(),
            "Content-Type": "application/json",
            Accept: "application/json",
          },
          body,
          credentials: "same-origin",
        });
        let data = {};
        try {
          data = await response.json();
        } catch (_) {
          data = { message: `HTTP ${response.status}` };
        }
        if (response.ok) {
          this.answer = data;
        } else {
          const said = LG.words(data);
          this.error = [said.message, said.next].filter(Boolean).join(" ");
        }
      } catch (_) {
        this.error = this.$root.dataset.unreachable;
      } finally {
        this.busy = false;
      }
    },
  }));
});
