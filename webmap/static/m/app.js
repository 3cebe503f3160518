// 网格通: the grid worker's phone. Offline first: reports (with a photo) and visits are queued in
// localStorage with an idempotency key and sent when the network returns; the server stores each
// once (the key for reports and visits, the photo's bytes for photos), so a resend doubles nothing.
"use strict";

const TEXT = {
  zh: {title: "网格通", signin: "登录", username: "用户名", password: "密码", where: "我在哪", locate: "定位",
       tasks: "我的任务", report: "上报事件", describe: "描述问题", send: "提交", visit: "记录走访",
       notes: "走访情况", record: "记录", signout: "退出", grid: "网格", community: "社区", station: "派出所",
       offline: "离线", pending: "待发送", queued: "已保存，联网后自动发送", sent: "已发送", noPosition: "无法定位",
       overdue: "逾期", due_soon: "即将到期", ok: "正常", due: "到期", never: "从未走访", failed: "发送失败"},
  en: {title: "Grid worker", signin: "Sign in", username: "Username", password: "Password", where: "Where am I",
       locate: "Locate me", tasks: "My tasks", report: "Report an event", describe: "Describe the problem",
       send: "Send", visit: "Record a visit", notes: "What you found", record: "Record", signout: "Sign out",
       grid: "Grid", community: "Community", station: "Police station", offline: "offline", pending: "to send",
       queued: "Saved; it will be sent when online", sent: "Sent", noPosition: "No position",
       overdue: "overdue", due_soon: "due soon", ok: "ok", due: "due", never: "never visited", failed: "Not sent"},
};
const QUEUE = "m.queue", TOKEN = "m.token", LANG = "m.lang", CACHE = "m.cache";
let lang = localStorage.getItem(LANG) || "zh";
let position = null;  // {lon, lat} of the last fix
let flushing = false;

const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[lang][key] || key;
const token = () => localStorage.getItem(TOKEN);
const queue = () => JSON.parse(localStorage.getItem(QUEUE) || "[]");
const saveQueue = (items) => { localStorage.setItem(QUEUE, JSON.stringify(items)); showPending(); };
const cache = () => JSON.parse(localStorage.getItem(CACHE) || "{}");
const newKey = (kind) => `m-${kind}-${Date.now()}-${Math.random().toString(36).slice(2, 10)}`;
// Times on the page are the city's (+08:00), whatever the phone's zone.
const local = (iso) => iso ? new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB",
  {timeZone: "Asia/Shanghai", dateStyle: "short", timeStyle: "short"}) : t("never");

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  $("lang").textContent = lang === "zh" ? "EN" : "中文";
  showNet(); showPending(); render();
}

function showNet() {
  $("net").textContent = navigator.onLine ? "" : t("offline");
  $("net").className = navigator.onLine ? "net" : "net offline";
}
function showPending() {
  const n = queue().length;
  $("pending").textContent = n ? `${t("pending")} ${n}` : "";
  $("pending").dataset.count = String(n);
}
function say(text) { $("status").textContent = text; }

async function api(path, options = {}) {
  const headers = {...(options.headers || {}), Authorization: `Bearer ${token()}`};
  const response = await fetch(path, {...options, headers});
  if (response.status === 401) { signOut(); throw new Error("signed out"); }
  return response;
}

// --- what the page shows, from the cache when offline ----------------------------------------------
function categoryName(code) {
  const found = (cache().categories || []).find((x) => x.code === code);
  return found && lang === "zh" ? found.name : code;
}

function render() {
  const c = cache();
  const categories = $("categories");
  categories.innerHTML = (c.categories || []).map((x) =>
    `<option value="${x.code}">${lang === "zh" ? x.name : x.code}</option>`).join("");
  $("duties").innerHTML = (c.duties || []).map((d) =>
    `<option value="${d.duty_code}|${d.unit_code}">${d.duty_name} · ${d.unit_name}</option>`).join("");
  const tasks = [...(c.events || []).map((e) =>
      `<li class="${e.warning}">#${e.id} ${categoryName(e.category_code)} · ${e.status}` +
      ` · ${t("due")} ${local(e.due_at)}</li>`),
    ...(c.duties || []).filter((d) => d.status !== "ok").map((d) =>
      `<li class="${d.warning}">${d.duty_name} · ${d.unit_name} · ${t(d.status)} · ${t("due")} ${local(d.due_at)}</li>`)];
  $("tasks").innerHTML = tasks.join("");
  const w = c.where;
  $("where").innerHTML = w ? `<dt>${t("grid")}</dt><dd id="where-grid">${w.grid}</dd>` +
    `<dt>${t("community")}</dt><dd>${w.community}</dd><dt>${t("station")}</dt><dd>${w.station}</dd>` : "";
}

async function refresh() {
  if (!navigator.onLine || !token()) return;
  const fresh = {};
  try {
    const categories = await (await api("/v1/reference/categories")).json();
    fresh.categories = categories.filter((x) => x.parent_code).map((x) => ({code: x.code, name: x.name}));
    const duties = await api("/v1/me/duties");
    if (duties.ok) fresh.duties = (await duties.json()).items;
    const mine = await api("/v1/queue");
    if (mine.ok) fresh.events = (await mine.json()).items;
    // Merged into the cache as it is *now*: a locate() that answered during the awaits keeps its answer.
    localStorage.setItem(CACHE, JSON.stringify({...cache(), ...fresh}));
  } catch (err) { /* offline again: the cache stays */ }
  render();
}

function locate() {
  navigator.geolocation.getCurrentPosition(async (fix) => {
    position = {lon: fix.coords.longitude, lat: fix.coords.latitude};
    if (!navigator.onLine) return;
    const answer = await api(`/v1/locate?lon=${position.lon}&lat=${position.lat}`);
    if (!answer.ok) { say(t("noPosition")); return; }
    const a = await answer.json();
    const c = cache();
    c.where = {grid: a.grid.name, community: a.community ? a.community.name : "", station: a.station ? a.station.name : ""};
    localStorage.setItem(CACHE, JSON.stringify(c));
    render();
  }, () => say(t("noPosition")), {enableHighAccuracy: true, timeout: 10000});
}

// --- the offline queue ---------------------------------------------------------------------------------
function enqueue(item) {
  saveQueue([...queue(), item]);
  say(t("queued"));
  flush();
}

async function sendOne(item) {
  if (item.kind === "visit") {
    const r = await api("/v1/visits", {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(item.body)});
    if (!r.ok && r.status !== 200) throw new Error(`visit ${r.status}`);
    return null;
  }
  if (item.eventId == null) {
    const r = await api("/v1/events", {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(item.body)});
    if (!r.ok) throw new Error(`report ${r.status}`);
    item.eventId = (await r.json()).id;
  }
  if (item.photo) {
    const form = new FormData();
    form.append("file", await (await fetch(item.photo)).blob(), "photo.jpg");
    const r = await api(`/v1/events/${item.eventId}/photos`, {method: "POST", body: form});
    if (!r.ok) throw new Error(`photo ${r.status}`);
  }
  return item.eventId;
}

async function flush() {
  if (flushing || !navigator.onLine || !token()) return;
  flushing = true;
  try {
    for (const item of queue()) {
      try {
        await sendOne(item);
        saveQueue(queue().filter((x) => x.key !== item.key));
        say(t("sent"));
      } catch (err) {
        // keep it (and what was done of it: the event id) for the next attempt
        saveQueue(queue().map((x) => (x.key === item.key ? item : x)));
        say(`${t("failed")}: ${err.message}`);
        break;
      }
    }
  } finally { flushing = false; }
  refresh();
}

function readPhoto(file) {
  return new Promise((resolve, reject) => {
    if (!file) { resolve(null); return; }
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = reject;
    reader.readAsDataURL(file);
  });
}

// --- wiring ----------------------------------------------------------------------------------------------
function signOut() { localStorage.removeItem(TOKEN); start(); }

function start() {
  const signedIn = Boolean(token());
  $("signin").hidden = signedIn;
  $("app").hidden = !signedIn;
  translate();
  if (signedIn) { refresh(); locate(); flush(); }
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await fetch("/v1/auth/token", {method: "POST", body: new URLSearchParams(new FormData(ev.target))});
  const a = await r.json();
  if (!r.ok) { $("signin-error").textContent = a.detail || r.status; return; }
  localStorage.setItem(TOKEN, a.access_token);
  start();
});

$("report-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  if (!position) { say(t("noPosition")); return; }
  const key = newKey("report");
  enqueue({kind: "report", key, photo: await readPhoto(f.photo.files[0]),
           body: {lon: position.lon, lat: position.lat, category: f.category.value, description: f.description.value,
                  source: "grid_worker", occurred_at: new Date().toISOString(), idempotency_key: key}});
  f.reset();
});

$("visit-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const [duty, unit] = f.duty.value.split("|");
  const key = newKey("visit");
  const body = {duty_code: duty, unit_code: unit, notes: f.notes.value, visited_at: new Date().toISOString(),
                idempotency_key: key, ...(position ? {lon: position.lon, lat: position.lat} : {})};
  enqueue({kind: "visit", key, body});
  f.reset();
});

$("locate").addEventListener("click", locate);
$("signout").addEventListener("click", signOut);
$("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem(LANG, lang); translate(); });
window.addEventListener("online", () => { showNet(); flush(); });
window.addEventListener("offline", showNet);
if ("serviceWorker" in navigator) navigator.serviceWorker.register("/m/sw.js", {scope: "/m"}).catch(() => {});
start();
