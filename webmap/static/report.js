/*
 * The citizens' page (随手拍): report a problem where it is, and follow one's reports.
 *
 * A citizen who signs in on the one-map lands here instead of on a map they may not read. Anyone may
 * report (the anonymous get a follow token, kept in this browser's localStorage); a signed-in citizen
 * also sees every report of their account (/v1/me/reports). Category and state names come from
 * /map/names, times are shown in the city's zone. Each filled-in form carries one idempotency key,
 * so pressing "submit" twice on a bad line stores one report.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "geoservice.token";
  var FOLLOW_KEY = "geoservice.follow";
  var USER_KEY = "geoservice.username";
  var state = { token: sessionStorage.getItem(TOKEN_KEY), names: null, me: null, key: newKey(), shown: 0, errors: [] };
  window.citizenPage = state;

  function newKey() {
    return "web-" + (window.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
  }

  function $(id) {
    return document.getElementById(id);
  }

  function escapeHtml(value) {
    return String(value === null || value === undefined ? "" : value).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function api(url, options) {
    options = options || {};
    var headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    if (state.token) headers.Authorization = "Bearer " + state.token;
    return fetch(url, Object.assign({}, options, { headers: headers })).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) {
          var error = new Error(body.detail || response.statusText);
          error.status = response.status;
          throw error;
        }
        return body;
      });
    });
  }

  function nameOf(kind, code) {
    var entry = state.names && state.names[kind] && state.names[kind][code];
    if (!entry) return code || "—";
    return typeof entry === "string" ? entry : entry.name;
  }

  function categoryName(code) {
    var table = (state.names && state.names.categories) || {};
    var entry = table[code];
    if (!entry) return code || "—";
    return entry.parent && table[entry.parent] ? table[entry.parent].name + " · " + entry.name : entry.name;
  }

  function localTime(iso) {
    if (!iso) return "—";
    var parts = {};
    new Intl.DateTimeFormat("en-CA", { timeZone: (state.names && state.names.time_zone) || "Asia/Shanghai",
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
      .formatToParts(new Date(iso)).forEach(function (p) {
        parts[p.type] = p.value;
      });
    return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute;
  }

  function relativeTime(iso) {
    var s = (Date.now() - new Date(iso).getTime()) / 1000;
    if (s < 60) return "刚刚";
    if (s < 3600) return Math.floor(s / 60) + " 分钟前";
    if (s < 86400) return Math.floor(s / 3600) + " 小时前";
    return Math.floor(s / 86400) + " 天前";
  }

  function follows() {
    try {
      return JSON.parse(localStorage.getItem(FOLLOW_KEY) || "[]");
    } catch (e) {
      return [];
    }
  }

  function fillCategories() {
    var categories = state.names.categories;
    var classes = Object.keys(categories).filter(function (code) {
      return !categories[code].parent;
    });
    $("report-category").innerHTML = '<option value="">请选择</option>' + classes.map(function (cls) {
      var subs = Object.keys(categories).filter(function (code) {
        return categories[code].parent === cls;
      });
      return '<optgroup label="' + escapeHtml(categories[cls].name) + '">' + subs.map(function (code) {
        return '<option value="' + escapeHtml(code) + '">' + escapeHtml(categories[code].name) + "</option>";
      }).join("") + "</optgroup>";
    }).join("");
    if (state.names.city) $("report-city").textContent = state.names.city;
  }

  function progressItem(view, category, description) {
    var shown = view.master ? view.master : view;
    var notes = (shown.public_notes || []).map(function (n) {
      return "<br><small>" + escapeHtml(localTime(n.at)) + " " + escapeHtml(n.note) + "</small>";
    }).join("");
    return '<li data-event="' + view.id + '" data-status="' + escapeHtml(shown.status) + '">#' + view.id + " " +
      escapeHtml(categoryName(category)) + ' · <span class="status">' + escapeHtml(nameOf("statuses", shown.status)) +
      "</span>" + (view.master ? "（已与 #" + view.master.id + " 合并处理）" : "") +
      "<br><small>上报于 " + escapeHtml(localTime(view.reported_at)) + "（" + escapeHtml(relativeTime(view.reported_at)) + "）</small>" +
      (description ? "<br>" + escapeHtml(description) : "") + notes + "</li>";
  }

  function refreshMine() {
    var lists = [];
    if (state.me) {
      lists.push(api("/v1/me/reports").then(function (answer) {
        return answer.items.map(function (v) {
          return progressItem(v, v.category_code, v.description);
        });
      }));
    }
    follows().forEach(function (saved) {
      lists.push(api("/v1/follow/" + encodeURIComponent(saved.token)).then(function (view) {
        return [progressItem(view, saved.category, saved.description)];
      }, function () {
        return [];
      }));
    });
    return Promise.all(lists).then(function (all) {
      var items = [].concat.apply([], all);
      $("report-mine").innerHTML = items.join("") || "<li>还没有上报</li>";
      state.shown = items.length;
    }).catch(function (error) {
      state.errors.push(error.message);
    });
  }

  function whoAmI() {
    if (!state.token) {
      state.me = null;
      $("report-user").textContent = "未登录（可匿名上报）";
      $("report-signin").hidden = false;
      $("report-signout").hidden = true;
      return Promise.resolve();
    }
    // /v1/auth/me answers staff only; a citizen's token is one /v1/me/reports accepts.
    var me = api("/v1/auth/me").catch(function (error) {
      if (error.status !== 403) throw error;
      return api("/v1/me/reports").then(function () {
        return { role: "public", username: sessionStorage.getItem(USER_KEY) || "" };
      });
    });
    return me.then(function (me) {
      state.me = me;
      $("report-user").textContent = (me.username ? me.username + " · " : "") + nameOf("roles", me.role);
      $("report-signin").hidden = true;
      $("report-signout").hidden = false;
      if (me.role !== "public") $("report-user").innerHTML += ' · <a href="/map" style="color:#fff">风险一张图</a>';
    }, function () {
      sessionStorage.removeItem(TOKEN_KEY);
      state.token = null;
      return whoAmI();
    });
  }

  $("report-signin").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = new FormData(event.target);
    fetch("/v1/auth/token", { method: "POST", body: new URLSearchParams({ username: form.get("username"), password: form.get("password") }) })
      .then(function (response) {
        return response.json().then(function (answer) {
          if (!response.ok) throw new Error(answer.detail || "登录失败");
          return answer;
        });
      })
      .then(function (answer) {
        state.token = answer.access_token;
        sessionStorage.setItem(TOKEN_KEY, state.token);
        sessionStorage.setItem(USER_KEY, form.get("username"));
        $("report-signin-error").textContent = "";
        return whoAmI().then(refreshMine);
      })
      .catch(function (error) {
        $("report-signin-error").textContent = error.message;
      });
  });

  $("report-signout").addEventListener("click", function () {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
    state.token = null;
    whoAmI().then(refreshMine);
  });

  $("report-here").addEventListener("click", function () {
    if (!navigator.geolocation) return;
    navigator.geolocation.getCurrentPosition(function (position) {
      $("report-lon").value = position.coords.longitude.toFixed(6);
      $("report-lat").value = position.coords.latitude.toFixed(6);
      $("report-crs").value = "wgs84";
    }, function (error) {
      $("report-result").textContent = "无法获取位置：" + error.message;
    });
  });

  $("report-form").addEventListener("change", function () {
    state.key = newKey(); // a changed report is a new report; the same one sent again keeps its key
  });

  $("report-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = new FormData(event.target);
    var body = {
      lon: Number(form.get("lon")), lat: Number(form.get("lat")), crs: form.get("crs"), category: form.get("category"),
      description: String(form.get("description") || "").trim(), source: "public", idempotency_key: state.key,
    };
    ["reporter_name", "reporter_phone"].forEach(function (field) {
      var value = String(form.get(field) || "").trim();
      if (value) body[field] = value;
    });
    var result = $("report-result");
    result.className = "";
    result.textContent = "提交中…";
    api("/v1/events", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (answer) {
        if (answer.follow_token) {
          var saved = follows().filter(function (f) {
            return f.token !== answer.follow_token;
          });
          saved.unshift({ token: answer.follow_token, category: body.category, description: body.description });
          localStorage.setItem(FOLLOW_KEY, JSON.stringify(saved.slice(0, 50)));
        }
        result.className = "ok";
        result.textContent = "已提交，编号 #" + answer.id + "，当前状态：" + nameOf("statuses", answer.status) +
          "。可在下方查看进度。";
        state.reported = answer.id;
        event.target.reset();
        state.key = newKey();
        return refreshMine();
      })
      .catch(function (error) {
        result.className = "error";
        result.textContent = "未能提交：" + error.message;
      });
  });

  api("/map/names")
    .then(function (names) {
      state.names = names;
      fillCategories();
      return whoAmI();
    })
    .then(refreshMine)
    .then(function () {
      state.ready = true;
    })
    .catch(function (error) {
      state.errors.push(error.message);
    });
})();
