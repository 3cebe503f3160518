// 网格通: the phone of grid workers, patrol officers and handlers. Offline first: reports (with a photo),
// visits, workflow steps on the worker's events, co-task steps, replies to supervision orders and patrol
// fixes are queued in IndexedDB (photo bytes do not fit localStorage's 5 MB), each with its own key, and
// sent in order when the network returns. The server stores each once: the idempotency key for reports,
// visits and patrol starts, the photo's bytes for photos, the fix's time within its patrol for fixes, the
// event's row_version for workflow steps (a step taken on a version can be taken only once; a resend
// finds the event already moved and is not applied again), the task's state for co-task steps (a start
// of a task in hand, the same feedback again answer the stored task) and the order's one reply for
// replies (the same words from the same person again answer the stored reply).
"use strict";

const TEXT = {
  zh: {title: "网格通", signin: "登录", username: "用户名", password: "密码", where: "我在哪", locate: "定位",
       tasks: "我的任务", report: "上报事件", describe: "描述问题", send: "提交", visit: "记录走访",
       notes: "走访情况", record: "记录", signout: "退出", grid: "网格", community: "社区", station: "派出所",
       offline: "离线", pending: "待发送", queued: "已保存，联网后自动发送", sent: "已发送", noPosition: "无法定位",
       overdue: "逾期", due_soon: "即将到期", ok: "正常", due: "到期", never: "从未走访", failed: "发送失败",
       refused: "未被接受", changed: "事件已被他人处理，未提交", orders: "督办", replyBy: "回复期限",
       noOrders: "暂无督办", feedbackNote: "处置情况（必填）", patrol: "巡逻", patrolStart: "开始巡逻",
       patrolStop: "结束巡逻", patrolling: "巡逻中", patrolDone: "巡逻已结束", km: "公里", fixes: "个定位点",
       inspect: "巡查场所", mapTitle: "网格范围与我的位置", act: "提交", cotask: "联合处置",
       task_open: "待处置", task_handling: "处置中", task_fed_back: "已反馈", reply: "回复", replyNote: "回复内容",
       replied: "已回复", escalateNote: "上报原因（必填）", escalatedTo: "已上报至", track: "巡逻轨迹",
       unsent: "还有 {n} 条记录未发送，退出后将被删除。仍要退出吗？"},
  en: {title: "Grid worker", signin: "Sign in", username: "Username", password: "Password", where: "Where am I",
       locate: "Locate me", tasks: "My tasks", report: "Report an event", describe: "Describe the problem",
       send: "Send", visit: "Record a visit", notes: "What you found", record: "Record", signout: "Sign out",
       grid: "Grid", community: "Community", station: "Police station", offline: "offline", pending: "to send",
       queued: "Saved; it will be sent when online", sent: "Sent", noPosition: "No position",
       overdue: "overdue", due_soon: "due soon", ok: "ok", due: "due", never: "never visited", failed: "Not sent",
       refused: "Refused", changed: "Someone else acted on the event first; not sent", orders: "Supervision orders",
       replyBy: "reply by", noOrders: "No supervision orders", feedbackNote: "What was done (required)",
       patrol: "Patrol", patrolStart: "Start patrol", patrolStop: "Stop patrol", patrolling: "Patrolling",
       patrolDone: "Patrol stopped", km: "km", fixes: "fixes", inspect: "Inspect a place",
       mapTitle: "My grid and my position", act: "Send", cotask: "Co-task", task_open: "to start",
       task_handling: "handling", task_fed_back: "fed back", reply: "Reply", replyNote: "Your reply",
       replied: "Replied", escalateNote: "Why escalate (required)", escalatedTo: "escalated to",
       track: "Patrol track", unsent: "{n} unsent records will be lost. Sign out anyway?"},
};
// English names of what /map/names names in Chinese (the server's names are the Chinese ones).
const EN = {
  actions: {accept: "Accept", start: "Start handling", feedback: "Feed back", escalate: "Escalate"},
  statuses: {reported: "reported", accepted: "accepted", dispatched: "dispatched", returned: "returned",
             handling: "handling", handled: "handled", reopened: "reopened", verified: "verified"},
  levels: {grid: "grid", community: "community", town: "town", city: "city"},
};
// The phone's steps → their state (escalate keeps a unit's state; a department's is taken back, returned).
const STEPS = {accept: "accepted", start: "handling", feedback: "handled", escalate: null};
const LEVELS = ["grid", "community", "town", "city"];
const DEPARTMENT_HELD = ["dispatched", "handling", "reopened"];
const CO_STEPS = {start: "handling", feedback: "fed_back"};  // co-task steps → the task's state
const CO_ROLES = ["handler", "dispatcher", "admin"];  // who works on co-tasks (GET /v1/queue/cotasks)
// What opens a form (a note, maybe a photo) before it is queued: the key is the button's step.
const FORMS = {feedback: {note: "feedbackNote", photo: true}, escalate: {note: "escalateNote", photo: false},
               "co-feedback": {note: "feedbackNote", photo: true}, reply: {note: "replyNote", photo: false}};
const TOKEN = "m.token", LANG = "m.lang", CACHE = "m.cache", PATROL = "m.patrol", PATROL_IDS = "m.patrolIds";
const OLD_QUEUE = "m.queue";  // the queue of an earlier version of the app, in localStorage
// Whose data the phone holds (the token's subject). It outlives an expired token, so that the same worker
// signing in again finds their queue, and anyone else signing in finds nothing of theirs.
const USER = "m.user";
const USER_DATA = [CACHE, PATROL, PATROL_IDS, OLD_QUEUE];  // a user's data in localStorage (m.lang is the phone's)
// The app shell the service worker keeps (sw.js, FILES); any other cached answer is a user's and goes at sign-out.
const SHELL_FILES = ["/m", "/static/m/app.js", "/static/m/app.css", "/m/manifest.webmanifest", "/static/m/icon-192.png"];
const BATCH = 10;  // fixes per batch; a running patrol also sends what it has every minute
let lang = localStorage.getItem(LANG) || "zh";
let position = null;  // {lon, lat} of the last fix
let flushing = null, again = false;  // the flush under way (a promise), and whether to go round again
let queued = [];  // what waits in IndexedDB, in order (a mirror for the page)
let watchId = null, ticker = null;

const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[lang][key] || key;
const token = () => localStorage.getItem(TOKEN);
// The username in a token (a JWT's ``sub``), read here without checking it: the server checks every request.
function userOf(tok) {
  try {
    const part = tok.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")), (ch) => ch.charCodeAt(0));
    return String(JSON.parse(new TextDecoder().decode(bytes)).sub);
  } catch (err) { return null; }
}
const me = () => (token() ? userOf(token()) : null);
const cache = () => JSON.parse(localStorage.getItem(CACHE) || "{}");
const saveCache = (c) => localStorage.setItem(CACHE, JSON.stringify(c));
const updateCache = (changes) => { const c = {...cache(), ...changes}; saveCache(c); return c; };
let lastSeq = 0;
const nextSeq = () => (lastSeq = Math.max(Date.now() * 1000, lastSeq + 1));  // the order items were made in
const newKey = (kind) => `m-${kind}-${Date.now()}-${Math.random().toString(36).slice(2, 10)}`;
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
// Times on the page are the city's (+08:00), whatever the phone's zone.
const local = (iso) => iso ? new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB",
  {timeZone: "Asia/Shanghai", dateStyle: "short", timeStyle: "short"}) : t("never");

// --- the queue, in IndexedDB ------------------------------------------------------------------------------
let database = null;
function db() {
  if (!database) {
    database = new Promise((resolve, reject) => {
      const open = indexedDB.open("m", 1);
      open.onupgradeneeded = () => open.result.createObjectStore("queue", {keyPath: "key"});
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
  }
  return database;
}
async function store(mode, work) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction("queue", mode);
    const request = work(tx.objectStore("queue"));
    tx.oncomplete = () => resolve(request ? request.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}
// Only the signed-in user's items are shown or sent: another's (left by an expired session) wait for them.
async function loadQueue() {
  const who = me();
  queued = ((await store("readonly", (s) => s.getAll())) || []).filter((x) => who && x.user === who)
    .sort((a, b) => a.seq - b.seq);
  showPending();
  return queued;
}
// Any change of the queue makes a refresh already under way stale (it may have read the server before a
// step was sent, and the page after it left the queue): only a refresh begun after it is shown.
let generation = 0;
// An item belongs to whoever was signed in when it was made; it is sent only under their token.
async function putItem(item) {
  if (item.user && item.user !== me()) return queued;  // a send that outlived its sign-out does not bring it back
  generation++;
  await store("readwrite", (s) => s.put({user: me(), ...item}));
  return loadQueue();
}
async function dropItem(key) { generation++; await store("readwrite", (s) => s.delete(key)); return loadQueue(); }

async function claimUntagged() {
  // Items of a version that did not record their user were made under the token the phone holds now.
  const who = me(), all = (await store("readonly", (s) => s.getAll())) || [];
  for (const item of all.filter((x) => !x.user)) {
    await store("readwrite", (s) => (who ? s.put({...item, user: who}) : s.delete(item.key)));
  }
}

async function migrateOldQueue() {
  // An earlier version kept the queue (photos as data: URLs) in localStorage: move it here once.
  const old = JSON.parse(localStorage.getItem(OLD_QUEUE) || "[]");
  for (const item of old) {
    if (typeof item.photo === "string") item.photo = await (await fetch(item.photo)).blob();
    await putItem({...item, seq: item.seq || nextSeq()});
  }
  localStorage.removeItem(OLD_QUEUE);
}

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  $("lang").textContent = lang === "zh" ? "EN" : "中文";
  $("minimap").setAttribute("aria-label", t("mapTitle"));
  showNet(); showPending(); render(); showPatrol();
}

function showNet() {
  $("net").textContent = navigator.onLine ? "" : t("offline");
  $("net").className = navigator.onLine ? "net" : "net offline";
}
function showPending() {
  const n = queued.length;
  $("pending").textContent = n ? `${t("pending")} ${n}` : "";
  $("pending").dataset.count = String(n);
}
function say(text) { $("status").textContent = text; }

// ``options.user``: the request is someone's queued write, sent only while they are the one signed in.
async function api(path, options = {}) {
  const {user, ...rest} = options;
  if (user && user !== me()) throw new Error("signed out");
  const headers = {...(rest.headers || {}), Authorization: `Bearer ${token()}`};
  const response = await fetch(path, {...rest, headers});
  if (response.status === 401) { sessionEnded(); throw new Error("signed out"); }
  return response;
}
const postJson = (path, body, user) => api(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                                  body: JSON.stringify(body), user});

// --- what the page shows, from the cache when offline ----------------------------------------------
function named(kind, code) {
  if (lang !== "zh") return (EN[kind] && EN[kind][code]) || code;
  const names = cache().names || {};
  const found = (names[kind] || {})[code];
  return found ? (typeof found === "string" ? found : found.name) : code;
}

function eventItem(e) {
  const acts = (e.allowed_actions || []).filter((a) => a in STEPS);
  const buttons = acts.map((a) =>
    `<button type="button" data-act="${a}" data-event="${e.id}">${esc(named("actions", a))}</button>`).join("");
  return `<li class="${e.warning}" data-event-id="${e.id}" data-status="${e.status}" data-level="${e.escalation_level}">` +
    `<span class="what">#${e.id} ${esc(named("categories", e.category_code))} · ` +
    `<span class="state">${esc(named("statuses", e.status))}</span> · ${t("due")} ${local(e.due_at)}</span>` +
    (e.escalated ? ` · <b class="escalated">${t("escalatedTo")} ${esc(named("levels", e.escalation_level))}</b>` : "") +
    (e.supervised ? ` · <b class="red">${t("orders")}</b>` : "") +
    (buttons ? `<div class="acts">${buttons}</div>` : "") + "</li>";
}

// A co-task (联合处置): my department's part of an event another department leads.
function cotaskItem(k) {
  const acts = {open: ["start"], handling: ["feedback"]}[k.status] || [];
  const buttons = acts.map((a) => `<button type="button" data-co="${a}" data-event="${k.event_id}" ` +
    `data-department="${esc(k.department_code)}">${esc(named("actions", a))}</button>`).join("");
  return `<li class="cotask ${k.warning}" data-cotask-event="${k.event_id}" data-department="${esc(k.department_code)}" ` +
    `data-status="${k.status}"><span class="what"><b>${t("cotask")}</b> #${k.event_id} ` +
    `${esc(named("categories", k.category_code))} · ${esc(k.place)} · <span class="state">${t(`task_${k.status}`)}</span>` +
    ` · ${t("due")} ${local(k.due_at)}</span>` + (buttons ? `<div class="acts">${buttons}</div>` : "") + "</li>";
}

function orderItem(o) {
  const answer = o.reply
    ? `<div class="reply">${t("replied")}: ${esc(o.reply)}</div>`
    : `<div class="acts"><button type="button" data-reply="${o.id}">${t("reply")}</button></div>`;
  return `<li class="${o.overdue ? "red" : ""}" data-order="${o.id}" data-replied="${o.reply ? 1 : 0}">#${o.event_id} ` +
    `${esc(o.instruction)} · ${t("replyBy")} ${local(o.reply_due_at)}${answer}</li>`;
}

function render() {
  const c = token() ? cache() : {};  // signed out: nothing of anyone's, not even in the hidden page
  const categories = Object.entries((c.names || {}).categories || {}).filter(([, x]) => x.parent);
  $("categories").innerHTML = categories.map(([code, x]) =>
    `<option value="${esc(code)}">${esc(lang === "zh" ? x.name : code)}</option>`).join("");
  const place = c.place && c.place.inspection ? c.place : null;
  const placeOption = place ? `<option value="${esc(place.inspection.duty_code)}|${esc(place.inspection.unit_code)}|` +
    `${esc(place.code)}" selected>${t("inspect")} · ${esc(place.name)} · ${esc(place.inspection.duty_name)}</option>` : "";
  $("duties").innerHTML = placeOption + (c.duties || []).map((d) =>
    `<option value="${esc(d.duty_code)}|${esc(d.unit_code)}">${esc(d.duty_name)} · ${esc(d.unit_name)}</option>`).join("");
  $("visit-place").hidden = !place;
  $("visit-place").textContent = place ? `${t("inspect")}: ${place.name} · ${t("due")} ${local(place.inspection.due_at)}` : "";
  const tasks = [...(c.events || []).map(eventItem), ...(c.cotasks || []).map(cotaskItem),
    ...(c.duties || []).filter((d) => d.status !== "ok").map((d) =>
      `<li class="${d.warning}">${esc(d.duty_name)} · ${esc(d.unit_name)} · ${t(d.status)} · ${t("due")} ${local(d.due_at)}</li>`)];
  const orders = c.orders || [];
  // a form being filled in survives the lists being drawn again (a refresh may land while the worker types)
  const open = [...openForms($("tasks")), ...openForms($("orders"))];
  $("tasks").innerHTML = tasks.join("");
  $("orders").innerHTML = orders.length ? orders.map(orderItem).join("") : `<li>${t("noOrders")}</li>`;
  reopenForms(open);
  const w = c.where;
  $("where").innerHTML = w ? `<dt>${t("grid")}</dt><dd id="where-grid">${esc(w.grid)}</dd>` +
    `<dt>${t("community")}</dt><dd>${esc(w.community)}</dd><dt>${t("station")}</dt><dd>${esc(w.station)}</dd>` : "";
  drawMap(c);
}

// --- the small map: the grid's outline and my position, drawn locally (no tiles) -------------------------
function rings(geometry) {
  if (!geometry) return [];
  if (geometry.type === "Polygon") return geometry.coordinates;
  if (geometry.type === "MultiPolygon") return geometry.coordinates.flat();
  return [];
}
function drawMap(c) {
  const svg = $("minimap");
  const shape = c.gridShape && c.where && c.gridShape.code === c.where.code ? rings(c.gridShape.geometry) : [];
  // (an <svg> has no ``hidden`` property: its display is set instead)
  if (!shape.length) { svg.style.display = "none"; svg.innerHTML = ""; return; }
  const points = shape.flat();
  const me = c.position;
  if (me) points.push([me.lon, me.lat]);
  const p = patrol();
  const track = p && p.track ? p.track : [];  // the running patrol's fixes so far, drawn on the same projection
  points.push(...track);
  const lons = points.map((p) => p[0]), lats = points.map((p) => p[1]);
  const [w, e, s, n] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
  // A drawing, not a measurement: longitude shrunk by cos(latitude) so that the grid keeps its shape.
  const k = Math.cos(((s + n) / 2) * Math.PI / 180);
  const width = 300, height = 200, pad = 12;
  const scale = Math.min((width - 2 * pad) / Math.max((e - w) * k, 1e-9), (height - 2 * pad) / Math.max(n - s, 1e-9));
  const x0 = (width - (e - w) * k * scale) / 2, y0 = (height - (n - s) * scale) / 2;
  const xy = ([lon, lat]) => [(x0 + (lon - w) * k * scale).toFixed(1), (y0 + (n - lat) * scale).toFixed(1)];
  const d = shape.map((ring) => "M" + ring.map((p) => xy(p).join(",")).join("L") + "Z").join("");
  let dot = "";
  if (me) { const [x, y] = xy([me.lon, me.lat]); dot = `<circle id="me" class="me" cx="${x}" cy="${y}" r="6"/>`; }
  const line = track.length ? `<polyline id="track" class="track" aria-label="${esc(t("track"))}" ` +
    `points="${track.map((q) => xy(q).join(",")).join(" ")}"/>` : "";
  svg.innerHTML = `<title>${esc(t("mapTitle"))}</title>` +
    `<path id="grid-outline" class="grid" data-grid="${esc(c.gridShape.code)}" fill-rule="evenodd" d="${d}"/>${line}${dot}`;
  svg.style.display = "";
}

async function refresh() {
  if (!navigator.onLine || !token()) return;
  const begun = generation, who = me();
  const changes = {};  // only what this reads: a fix answered meanwhile is not overwritten
  try {
    const names = await api("/map/names");
    if (names.ok) {
      const n = await names.json();
      changes.names = {categories: n.categories, statuses: n.statuses, actions: n.actions, levels: n.levels};
    }
    const account = await api("/v1/auth/me");
    if (account.ok) changes.role = (await account.json()).role;
    const duties = await api("/v1/me/duties");
    if (duties.ok) changes.duties = (await duties.json()).items;
    const mine = await api("/v1/queue");
    if (mine.ok) changes.events = (await mine.json()).items;
    const orders = await api("/v1/supervision?waiting=true");
    if (orders.ok) changes.orders = (await orders.json()).items;
    if (CO_ROLES.includes(changes.role || cache().role)) {  // co-tasks are departments' work, never a grid worker's
      const co = await api("/v1/queue/cotasks");
      if (co.ok) changes.cotasks = (await co.json()).items;
    } else changes.cotasks = [];
    const place = new URLSearchParams(location.search).get("place");
    if (place) {
      const p = await api(`/v1/me/places/${encodeURIComponent(place)}`);
      changes.place = p.ok ? await p.json() : null;
    }
    // the steps still waiting here are shown as taken (the server has not heard of them yet)
    if (begun !== generation || who !== me()) return;  // stale: the refresh after the queue's change shows the page
    for (const item of queued) applyLocally(changes, item);
    updateCache(changes);
  } catch (err) { /* offline again: the cache stays */ }
  render();
}

function locate() {
  const who = me();
  navigator.geolocation.getCurrentPosition(async (fix) => {
    if (who !== me()) return;  // signed out meanwhile
    position = {lon: fix.coords.longitude, lat: fix.coords.latitude};
    updateCache({position});
    render();
    if (!navigator.onLine) return;
    try {
      const answer = await api(`/v1/locate?lon=${position.lon}&lat=${position.lat}`);
      if (!answer.ok) { say(t("noPosition")); return; }
      const a = await answer.json();
      const changes = {where: {code: a.grid.code, grid: a.grid.name, community: a.community ? a.community.name : "",
                               station: a.station ? a.station.name : ""}};
      if (who !== me()) return;
      const known = cache().gridShape;
      if (!known || known.code !== a.grid.code) {
        // the outline, within my scope (a grid I may not see is a 404, and the map stays hidden)
        const shape = await api(`/collections/grids/items/${encodeURIComponent(a.grid.code)}`);
        changes.gridShape = shape.ok ? {code: a.grid.code, geometry: (await shape.json()).geometry} : null;
      }
      if (who !== me()) return;
      updateCache(changes);
      render();
    } catch (err) { /* offline: what was shown stays */ }
  }, () => say(t("noPosition")), {enableHighAccuracy: true, timeout: 10000, maximumAge: 0});
}

// --- the offline queue ---------------------------------------------------------------------------------
async function enqueue(item) {
  await putItem({...item, seq: nextSeq()});
  say(t("queued"));
  flush();
}

class Refused extends Error {}  // the server answered no for good: drop the item, say why

async function refusal(response, what) {
  let detail = response.status;
  try { detail = (await response.json()).detail || detail; } catch (err) { /* not JSON */ }
  return response.status >= 400 && response.status < 500 && ![408, 429].includes(response.status)
    ? new Refused(`${what}: ${detail}`) : new Error(`${what} ${response.status}`);
}

async function uploadPhoto(eventId, blob, user) {
  const form = new FormData();
  form.append("file", blob, "photo.jpg");
  const r = await api(`/v1/events/${eventId}/photos`, {method: "POST", body: form, user});
  if (!r.ok) throw await refusal(r, "photo");
}

function patrolIds() { return JSON.parse(localStorage.getItem(PATROL_IDS) || "{}"); }

async function sendOne(item) {
  if (item.kind === "visit") {
    const r = await postJson("/v1/visits", item.body, item.user);
    if (!r.ok) throw await refusal(r, "visit");
    return;
  }
  if (item.kind === "act") {
    if (item.photo && !item.photoSent) {
      await uploadPhoto(item.eventId, item.photo, item.user);
      item.photoSent = true;
      await putItem(item);
    }
    const r = await postJson(`/v1/events/${item.eventId}/transitions`, item.body, item.user);
    if (r.ok) return;
    if (r.status === 409) {
      // Sent before but the answer was lost? The step was taken on this row_version once; read the event:
      // already in the step's state (an escalation: already above the level it was taken at) is done.
      const now = await api(`/v1/events/${item.eventId}`, {user: item.user});
      const e = now.ok ? await now.json() : null;
      if (e && (item.body.action === "escalate" ? LEVELS.indexOf(e.escalation_level) > LEVELS.indexOf(item.level)
                                                  : e.status === STEPS[item.body.action])) return;
      throw new Refused(t("changed"));
    }
    throw await refusal(r, item.body.action);
  }
  if (item.kind === "cotask") {
    if (item.photo && !item.photoSent) {  // before the feedback: a fed-back task leaves the handler's scope
      await uploadPhoto(item.eventId, item.photo, item.user);
      item.photoSent = true;
      await putItem(item);
    }
    const path = `/v1/events/${item.eventId}/tasks/${encodeURIComponent(item.department)}/${item.step}`;
    const r = item.step === "feedback" ? await postJson(path, {note: item.note}, item.user)
                                           : await api(path, {method: "POST", user: item.user});
    if (r.ok) return;  // a start of a task in hand, the same feedback again: the server answers the stored task
    if (r.status === 409) {
      // the task moved meanwhile: done if it is where this step leads (a feedback: with these words)
      const now = await api(`/v1/events/${item.eventId}/tasks`, {user: item.user});
      const mine = now.ok ? (await now.json()).items.filter((k) => k.department_code === item.department &&
                                                           k.status !== "replaced").pop() : null;
      if (mine && (item.step === "start" ? ["handling", "fed_back"].includes(mine.status)
                                         : mine.status === "fed_back" && mine.feedback === item.note)) return;
      throw new Refused(t("changed"));
    }
    throw await refusal(r, t("cotask"));
  }
  if (item.kind === "reply") {
    // One reply per order; the same words from me again answer the stored reply, other words (someone
    // else answered first) are a 409, dropped with the server's reason.
    const r = await postJson(`/v1/supervision/${item.orderId}/reply`, {reply: item.reply}, item.user);
    if (!r.ok) throw await refusal(r, t("reply"));
    return;
  }
  if (item.kind === "patrol-start") {
    const r = await postJson("/v1/patrols", {idempotency_key: item.key, started_at: item.started_at}, item.user);
    if (!r.ok) throw await refusal(r, "patrol");
    const ids = patrolIds(), answer = await r.json();
    if (item.user !== me()) return;
    ids[item.local] = answer.id;
    localStorage.setItem(PATROL_IDS, JSON.stringify(ids));
    return;
  }
  if (item.kind === "fixes" || item.kind === "patrol-stop") {
    const id = patrolIds()[item.local];
    if (id == null) throw new Refused("patrol");  // its start was refused: nothing to add to
    const r = item.kind === "fixes"
      ? await postJson(`/v1/patrols/${id}/points`, {crs: "wgs84", fixes: item.fixes}, item.user)
      : await postJson(`/v1/patrols/${id}/stop`, {stopped_at: item.stopped_at}, item.user);
    if (!r.ok) throw await refusal(r, "patrol");
    return;
  }
  if (item.eventId == null) {
    const r = await postJson("/v1/events", item.body, item.user);
    if (!r.ok) throw await refusal(r, "report");
    item.eventId = (await r.json()).id;
  }
  if (item.photo) await uploadPhoto(item.eventId, item.photo, item.user);
}

// Returns the flush under way, so that signing out can wait for what is being sent.
function flush() {
  if (flushing) { again = true; return flushing; }
  if (!navigator.onLine || !token()) return Promise.resolve();
  flushing = sendQueued().finally(() => { flushing = null; refresh(); });
  return flushing;
}

async function sendQueued() {
  let stuck = false;
  do {
    again = false;
    for (const item of await loadQueue()) {
      if (item.user !== me()) return;  // signed out meanwhile: not one more request under anyone's token
      try {
        await sendOne(item);
        await dropItem(item.key);
        say(t("sent"));
      } catch (err) {
        if (err instanceof Refused) { await dropItem(item.key); say(`${t("refused")}: ${err.message}`); continue; }
        await putItem(item);  // keep it, and what was done of it (the event id), for the next attempt
        say(`${t("failed")}: ${err.message}`);
        stuck = true;
        break;
      }
    }
  } while (again && !stuck && navigator.onLine);
}

// --- my tasks: accept, start, feed back -------------------------------------------------------------------
// What a queued item changes on the page, before the server has heard of it (and after a refresh that
// read the server before it was sent).
function applyLocally(c, item) {
  if (item.kind === "cotask") {
    const k = (c.cotasks || []).find((x) => x.event_id === item.eventId && x.department_code === item.department);
    if (k && k.status !== "fed_back") k.status = CO_STEPS[item.step];
    return;
  }
  if (item.kind === "reply") {
    const o = (c.orders || []).find((x) => x.id === item.orderId);
    if (o && !o.reply) o.reply = item.reply;
    return;
  }
  if (item.kind !== "act") return;
  const e = (c.events || []).find((x) => x.id === item.eventId);
  if (!e || e.row_version !== item.body.expected_version) return;
  e.row_version += 1;
  if (item.body.action === "escalate") {  // sent up: no longer mine to act on
    e.escalation_level = LEVELS[LEVELS.indexOf(e.escalation_level) + 1] || e.escalation_level;
    if (DEPARTMENT_HELD.includes(e.status)) e.status = "returned";
    e.escalated = true;
    e.allowed_actions = [];
    return;
  }
  e.status = STEPS[item.body.action];
  e.allowed_actions = {accepted: e.small_matter ? ["start"] : [], handling: ["feedback"], handled: []}[e.status] || [];
}

async function act(eventId, action, note, photo) {
  const c = cache();
  const e = (c.events || []).find((x) => x.id === eventId);
  if (!e) return;
  const item = {kind: "act", key: newKey(action), eventId, photo: photo || null, level: e.escalation_level,
                body: {action, expected_version: e.row_version, note: note || ""}};
  await queueAndShow(item);
}

async function queueAndShow(item) {
  await putItem({...item, seq: nextSeq()});  // queued first: the page never shows a step that is not waiting
  const c = cache();
  applyLocally(c, item);  // shown at once; the server's answer replaces it when online
  saveCache(c);
  render();
  say(t("queued"));
  flush();
}

async function coStep(eventId, department, step, note, photo) {
  await queueAndShow({kind: "cotask", key: newKey(`co-${step}`), eventId, department, step, note: note || "",
                      photo: photo || null});
}

async function reply(orderId, text) {
  await queueAndShow({kind: "reply", key: newKey("reply"), orderId, reply: text});
}

// A button's step: an event's action, a co-task's (co-start, co-feedback), or a reply to an order.
const stepOf = (b) => b.dataset.act || (b.dataset.co ? `co-${b.dataset.co}` : "reply");
const formId = (b) => [stepOf(b), b.dataset.event, b.dataset.department, b.dataset.reply].join("|");

function openForm(button) {
  const li = button.closest("li");
  const id = formId(button);
  const known = [...li.querySelectorAll("form[data-for]")].find((f) => f.dataset.for === id);
  if (known) return known;
  const spec = FORMS[stepOf(button)];
  const form = document.createElement("form");
  form.className = "act-form";
  form.dataset.for = id;
  form.innerHTML = `<textarea name="note" rows="2" maxlength="2000" required placeholder="${esc(t(spec.note))}"></textarea>` +
    (spec.photo ? `<input name="photo" type="file" accept="image/jpeg,image/png,image/webp" capture="environment">` : "") +
    `<button type="submit">${esc(button.textContent)}</button>`;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const note = form.note.value.trim(), photo = spec.photo ? form.photo.files[0] || null : null;
    if (!note) return;
    form.remove();
    const step = stepOf(button), eventId = Number(button.dataset.event);
    if (step === "reply") reply(Number(button.dataset.reply), note);
    else if (step === "co-feedback") coStep(eventId, button.dataset.department, "feedback", note, photo);
    else act(eventId, step, note, photo);
  });
  li.appendChild(form);
  form.note.focus();
  return form;
}

function openForms(list) {
  return [...list.querySelectorAll("form[data-for]")].map((f) => ({
    id: f.dataset.for, note: f.note.value, files: f.photo ? f.photo.files : null,
    focused: f.contains(document.activeElement)}));
}
function reopenForms(open) {
  for (const o of open) {
    const button = [...document.querySelectorAll("#tasks button, #orders button")].find((b) => formId(b) === o.id);
    if (!button) continue;  // the step was taken meanwhile
    const form = openForm(button);
    form.note.value = o.note;
    if (o.files && form.photo) form.photo.files = o.files;
    if (!o.focused) form.note.blur();
  }
}

function onListClick(ev) {
  const button = ev.target.closest("button[data-act], button[data-co], button[data-reply]");
  if (!button) return;
  const step = stepOf(button), eventId = Number(button.dataset.event);
  if (step in FORMS) openForm(button);
  else if (button.dataset.co) coStep(eventId, button.dataset.department, button.dataset.co, "", null);
  else act(eventId, step, "", null);
}
$("tasks").addEventListener("click", onListClick);
$("orders").addEventListener("click", onListClick);

// --- patrols: start, fixes in batches, stop ---------------------------------------------------------------
const patrol = () => JSON.parse(localStorage.getItem(PATROL) || "null");
const savePatrol = (p) => (p ? localStorage.setItem(PATROL, JSON.stringify(p)) : localStorage.removeItem(PATROL));

function metres(a, b) {
  // what the worker reads (haversine on a 6371 km sphere); the server measures the track itself, in its metric CRS
  const r = 6371008.8, rad = Math.PI / 180;
  const dlat = (b.lat - a.lat) * rad, dlon = (b.lon - a.lon) * rad;
  const h = Math.sin(dlat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dlon / 2) ** 2;
  return 2 * r * Math.asin(Math.sqrt(h));
}

function showPatrol() {
  const p = patrol();
  $("patrol-start").hidden = Boolean(p);
  $("patrol-stop").hidden = !p;
  const stats = $("patrol-stats");
  if (!p) { stats.textContent = stats.dataset.done ? t("patrolDone") : ""; return; }
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(p.started_at)) / 1000));
  const hms = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60].map((x) => String(x).padStart(2, "0")).join(":");
  stats.textContent = `${t("patrolling")} ${hms} · ${(p.distance_m / 1000).toFixed(2)} ${t("km")} · ${p.count} ${t("fixes")}`;
  stats.dataset.distance = String(Math.round(p.distance_m));
  stats.dataset.count = String(p.count);
}

async function sendBatch(p) {
  if (!p.buffer.length) return;
  const fixes = p.buffer;
  p.buffer = [];
  savePatrol(p);
  await enqueue({kind: "fixes", key: newKey("fixes"), local: p.local, fixes});
}

function onFix(fix) {
  const p = patrol();
  if (!p) return;
  const here = {lon: fix.coords.longitude, lat: fix.coords.latitude};
  position = here;
  // A position from before the start (the one the phone held when the watch began) is where I am now.
  const at = new Date(fix.timestamp >= Date.parse(p.started_at) ? fix.timestamp : Date.now()).toISOString();
  if (p.buffer.some((f) => f.at === at) || (p.lastAt && at <= p.lastAt)) return;  // one fix per instant
  const accuracy = fix.coords.accuracy;
  if (accuracy == null || accuracy <= 100) {  // the server ignores rougher fixes too
    if (p.last) p.distance_m += metres(p.last, here);
    p.last = here;
    (p.track = p.track || []).push([here.lon, here.lat]);  // drawn on the small map while the patrol runs
  }
  p.lastAt = at;
  p.buffer.push({lon: here.lon, lat: here.lat, at, ...(accuracy != null ? {accuracy_m: accuracy} : {})});
  p.count += 1;
  savePatrol(p);
  if (p.buffer.length >= BATCH) sendBatch(p);
  showPatrol();
  drawMap(updateCache({position: here}));
}

function watch() {
  if (watchId == null && patrol()) {
    watchId = navigator.geolocation.watchPosition(onFix, () => say(t("noPosition")),
                                                  {enableHighAccuracy: true, maximumAge: 0});
  }
  if (ticker == null && patrol()) {
    let tick = 0;
    ticker = setInterval(() => { showPatrol(); if (++tick % 60 === 0 && patrol()) sendBatch(patrol()); }, 1000);
  }
}

let starting = false;
async function startPatrol() {
  if (patrol() || starting) return;
  starting = true;
  const key = newKey("patrol");
  const p = {local: key, started_at: new Date().toISOString(), buffer: [], count: 0, distance_m: 0, last: null,
             track: []};
  try {  // queued first, as every step: the page never shows a patrol whose start is not waiting to be sent
    await putItem({kind: "patrol-start", key, local: key, started_at: p.started_at, seq: nextSeq()});
  } finally { starting = false; }
  savePatrol(p);
  delete $("patrol-stats").dataset.done;
  showPatrol();
  watch();
  say(t("queued"));
  flush();
}

async function stopPatrol() {
  const p = patrol();
  if (!p) return;
  if (watchId != null) navigator.geolocation.clearWatch(watchId);
  clearInterval(ticker);
  watchId = ticker = null;
  savePatrol(null);
  $("patrol-stats").dataset.done = "1";
  showPatrol();
  drawMap(cache());  // the track goes with the patrol
  if (p.buffer.length) {
    await putItem({kind: "fixes", key: newKey("fixes"), local: p.local, fixes: p.buffer,
                   seq: nextSeq()});
  }
  await enqueue({kind: "patrol-stop", key: newKey("stop"), local: p.local, stopped_at: new Date().toISOString()});
}

// --- wiring ----------------------------------------------------------------------------------------------
// Signing out on a shared phone leaves nothing of the worker behind: what is still queued is sent first
// (a running patrol is stopped and sent too); what cannot be sent now (offline, refused for a while) is
// named and lost only if the worker says so. Then the cached answers, the queue and the user's keys go.
async function signOut() {
  if (patrol()) await stopPatrol();
  if (queued.length && navigator.onLine) {
    say(t("pending"));
    await flush();
    await loadQueue();
  }
  if (queued.length && !confirm(t("unsent").replace("{n}", String(queued.length)))) return;
  await forget();
  localStorage.removeItem(TOKEN);
  localStorage.removeItem(USER);
  say("");
  start();
}

// An expired or revoked token (a 401): the page signs out but keeps the queue and the cache, both marked
// with their user, who finds them on signing in again; anyone else signing in gets neither (``forget``).
function sessionEnded() {
  if (!token()) return;
  localStorage.removeItem(TOKEN);
  start();
}

// Everything a user left on the phone: the cached answers, the queue, the running patrol, and any answer
// a cache of the service worker holds beside the app shell.
async function forget() {
  generation++;
  if (watchId != null) navigator.geolocation.clearWatch(watchId);
  clearInterval(ticker);
  watchId = ticker = null;
  position = null;
  delete $("patrol-stats").dataset.done;
  $("report-form").reset();
  $("visit-form").reset();
  for (const key of USER_DATA) localStorage.removeItem(key);
  sessionStorage.clear();
  await store("readwrite", (s) => s.clear());
  queued = [];
  showPending();
  if (!("caches" in window)) return;
  for (const name of await caches.keys()) {
    const cached = await caches.open(name);
    for (const request of await cached.keys()) {
      if (!SHELL_FILES.includes(new URL(request.url).pathname)) await cached.delete(request);
    }
  }
}

async function start() {
  const signedIn = Boolean(token());
  if (signedIn && !localStorage.getItem(USER)) localStorage.setItem(USER, me());  // signed in before m.user was kept
  $("signin").hidden = signedIn;
  $("app").hidden = !signedIn;
  // Drawn at once, before anything is awaited: a session that just ended leaves nothing of its user in the
  // page (``render`` reads the cache only with a token; the queue shown is the signed-in user's, so none),
  // not even for the moment the queue takes to load.
  if (!signedIn) { queued = []; render(); showPending(); }
  try { await claimUntagged(); await migrateOldQueue(); await loadQueue(); } catch (err) { say(`${t("failed")}: ${err.message}`); }
  translate();
  if (signedIn) { refresh(); locate(); flush(); watch(); }
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await fetch("/v1/auth/token", {method: "POST", body: new URLSearchParams(new FormData(ev.target))});
  const a = await r.json();
  if (!r.ok) { $("signin-error").textContent = a.detail || r.status; return; }
  const who = userOf(a.access_token);
  if (localStorage.getItem(USER) !== who) await forget();  // someone else's (or no one's) data: gone before mine
  localStorage.setItem(USER, who);
  localStorage.setItem(TOKEN, a.access_token);
  ev.target.reset();  // the password does not wait in the hidden form for the next person
  $("signin-error").textContent = "";
  start();
});

$("report-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  if (!position) { say(t("noPosition")); return; }
  const key = newKey("report");
  const photo = f.photo.files[0] || null;  // a File is a Blob: IndexedDB keeps its bytes
  const body = {lon: position.lon, lat: position.lat, category: f.category.value, description: f.description.value,
                source: "grid_worker", occurred_at: new Date().toISOString(), idempotency_key: key};
  f.reset();
  await enqueue({kind: "report", key, photo, body});
});

$("visit-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const [duty, unit, place] = f.duty.value.split("|");
  const key = newKey("visit");
  const body = {duty_code: duty, unit_code: unit, notes: f.notes.value, visited_at: new Date().toISOString(),
                idempotency_key: key, ...(place ? {place_code: place} : {}),
                ...(position ? {lon: position.lon, lat: position.lat} : {})};
  f.reset();
  await enqueue({kind: "visit", key, body});
});

$("locate").addEventListener("click", locate);
$("signout").addEventListener("click", signOut);
$("patrol-start").addEventListener("click", startPatrol);
$("patrol-stop").addEventListener("click", stopPatrol);
$("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem(LANG, lang); translate(); });
window.addEventListener("online", () => { showNet(); flush(); });
window.addEventListener("offline", showNet);
// A send that failed on a network that still says "online" (no "online" event will come) is tried again.
setInterval(() => { if (queued.length && navigator.onLine && token()) flush(); }, 30000);
if ("serviceWorker" in navigator) navigator.serviceWorker.register("/m/sw.js", {scope: "/m"}).catch(() => {});
start();
