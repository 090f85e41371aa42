// linegate's pages: what every screen shares. Plain JavaScript, no build step: the
// gateway serves this file as it is. Alpine.js (vendor/) binds the pages to the state.
"use strict";

window.LG = (() => {
  const strings = JSON.parse(document.getElementById("lg-strings").textContent);
  const lang = document.documentElement.lang;

  function t(key) {
    return strings[key] ?? key;
  }

  // An answer's words in the page's language (the API sends English and Chinese).
  function words(answer) {
    const zh = lang === "zh-CN";
    return {
      message: (zh && answer.message_zh) || answer.message || "",
      next: (zh && answer.next_zh) || answer.next || "",
    };
  }

  // An id for one action, the same on every retry: the gateway answers a repeated id
  // with its first answer. getRandomValues works on plain http too (randomUUID does not).
  function actionId() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // Who this page is: a terminal's credential, a kiosk's token, or the browser's
  // session cookie (then every change carries the session's CSRF token).
  const auth = {
    bearer: null,
    csrf: sessionStorage.getItem("linegate.csrf"),
    headers() {
      const h = {};
      if (this.bearer) h.Authorization = `Bearer ${this.bearer}`;
      else if (this.csrf) h["X-CSRF-Token"] = this.csrf;
      return h;
    },
  };

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // One request. A change is sent with an Idempotency-Key and retried with the same key
  // while the network fails or the gateway is unreachable, so flaky Wi-Fi neither loses
  // it nor does it twice. onWaiting(true/false) tells the page it is retrying.
  async function api(method, path, body, { pin, onWaiting, retry = method !== "GET" } = {}) {
    const headers = { ...auth.headers(), Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["Idempotency-Key"] = actionId();
    if (pin) headers["X-Operator-PIN"] = pin;
    let delay = 300;
    for (let attempt = 0; ; attempt++) {
      try {
        const response = await fetch(path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          credentials: "same-origin",
        });
        if (retry && response.status >= 502 && response.status <= 504) throw new Error("gateway");
        let data = {};
        try {
          data = await response.json();
        } catch (_) {
          data = { ok: false, message: `HTTP ${response.status}` };
        }
        if (onWaiting && attempt > 0) onWaiting(false);
        return { status: response.status, data };
      } catch (err) {
        if (!retry) throw err;
        if (onWaiting) onWaiting(true);
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  // A server-sent event stream read with fetch (EventSource cannot send a bearer token):
  // each snapshot to onData; after a drop, again from the last id, so the page gets
  // whatever changed meanwhile. onState("live" | "reconnecting" | "denied").
  function live(path, onData, onState) {
    let lastId = null;
    let stopped = false;
    let controller = null;
    let failures = 0;
    async function run() {
      while (!stopped) {
        controller = new AbortController();
        // A stream that sent nothing (not even its keep-alive) for this long is dead.
        let watchdog = setTimeout(() => controller.abort(), 40000);
        try {
          const headers = { ...auth.headers(), Accept: "text/event-stream" };
          if (lastId) headers["Last-Event-ID"] = lastId;
          const response = await fetch(path, {
            headers,
            signal: controller.signal,
            credentials: "same-origin",
            cache: "no-store",
          });
          if (response.status === 401 || response.status === 403) {
            let data = {};
            try {
              data = await response.json();
            } catch (_) {}
            onState("denied", data);
            return;
          }
          if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            clearTimeout(watchdog);
            watchdog = setTimeout(() => controller.abort(), 40000);
            buffer += value;
            let end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              const frame = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              let id = null;
              const data = [];
              for (const line of frame.split("\n")) {
                if (line.startsWith("id: ")) id = line.slice(4);
                else if (line.startsWith("data: ")) data.push(line.slice(6));
              }
              if (data.length) {
                if (id) lastId = id;
                failures = 0;
                onState("live");
                onData(JSON.parse(data.join("\n")));
              } else if (frame.startsWith(":")) {
                onState("live");
              }
            }
          }
        } catch (_) {
          // A drop, a timeout, the gateway restarting: try again below.
        } finally {
          clearTimeout(watchdog);
        }
        if (stopped) return;
        onState("reconnecting");
        failures++;
        await sleep(Math.min(500 * failures, 5000));
      }
    }
    run();
    return {
      stop() {
        stopped = true;
        if (controller) controller.abort();
      },
    };
  }

  // A sound an operator hears through the noise: two low buzzes for a refusal, one short
  // high tone for success. Made here (no audio file); silent until the page was touched.
  let audio = null;
  function beep(ok) {
    try {
      audio = audio || new AudioContext();
      const tones = ok ? [[1320, 0, 0.08]] : [[220, 0, 0.18], [220, 0.25, 0.18]];
      for (const [freq, start, length] of tones) {
        const osc = audio.createOscillator();
        const gain = audio.createGain();
        osc.type = ok ? "sine" : "square";
        osc.frequency.value = freq;
        gain.gain.value = 0.2;
        osc.connect(gain).connect(audio.destination);
        osc.start(audio.currentTime + start);
        osc.stop(audio.currentTime + start + length);
      }
    } catch (_) {
      // No audio device: the banner still says it.
    }
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const r = s % 60;
    if (h) return `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}`;
    return `${m}:${String(r).padStart(2, "0")}`;
  }

  function clock(iso) {
    if (!iso) return "–";
    return new Date(iso).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
  }

  function dateTime(iso) {
    if (!iso) return "–";
    return new Date(iso).toLocaleString(lang, {
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
    });
  }

  function percent(ratio) {
    if (ratio === null || ratio === undefined) return "–";
    return `${(ratio * 100).toFixed(1)}%`;
  }

  // Signing in with a password, for the board and the lookup (a browser session).
  async function signIn(username, password) {
    const { status, data } = await api("POST", "/api/session", { username, password }, {
      retry: false,
    });
    if (status === 200 && data.csrf_token) {
      auth.csrf = data.csrf_token;
      sessionStorage.setItem("linegate.csrf", data.csrf_token);
    }
    return { status, data };
  }

  // Who is signed in (a session or a token), or null.
  async function whoami() {
    const { status, data } = await api("GET", "/api/session", undefined, { retry: false });
    if (status !== 200) return null;
    if (data.csrf_token) {
      auth.csrf = data.csrf_token;
      sessionStorage.setItem("linegate.csrf", data.csrf_token);
    }
    return data;
  }

  // A kiosk's token comes in the address's fragment (never sent to a server's logs),
  // and is kept by the browser for the next start.
  function kioskToken() {
    const match = location.hash.match(/token=([^&]+)/);
    if (match) {
      localStorage.setItem("linegate.token", decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return localStorage.getItem("linegate.token");
  }

  function switchLanguage(to) {
    const url = new URL(location.href);
    url.searchParams.set("lang", to);
    location.replace(url.toString());
  }

  // What a page for people with an account shares (the board, the lookup): who is
  // signed in, the sign-in form, and a kiosk's token.
  function accountPage() {
    return {
      me: null,
      needsSignIn: false,
      signInError: "",
      username: "",
      password: "",
      async ensureSignedIn() {
        auth.bearer = kioskToken();
        // Asked only when this browser holds something to ask with: a token, or a session
        // it signed in to (its cookie is out of the script's reach). A fresh browser goes
        // straight to the form instead of being refused first.
        if (!auth.bearer && !localStorage.getItem("linegate.session")) {
          this.needsSignIn = true;
          return false;
        }
        this.me = await whoami();
        if (this.me === null && auth.bearer) {
          // A withdrawn or expired kiosk token: forget it, sign in instead.
          localStorage.removeItem("linegate.token");
          auth.bearer = null;
          this.me = await whoami();
        }
        if (this.me === null) localStorage.removeItem("linegate.session");
        this.needsSignIn = this.me === null;
        return this.me !== null;
      },
      async signIn() {
        const { status, data } = await signIn(this.username, this.password);
        this.password = "";
        if (status !== 200) {
          this.signInError = words(data).message || t("sign_in_failed");
          return;
        }
        this.signInError = "";
        localStorage.setItem("linegate.session", "1");
        this.me = await whoami();
        this.needsSignIn = false;
        this.signedIn();
      },
      signedIn() {},
    };
  }

  return {
    t,
    lang,
    accountPage,
    words,
    api,
    live,
    beep,
    auth,
    duration,
    clock,
    dateTime,
    percent,
    signIn,
    whoami,
    kioskToken,
    switchLanguage,
    actionId,
  };
})();
