/*
 * The risk one-map (风险一张图): the layers, the sign-in, the search box and the live panel.
 *
 * The page Folium built holds the Leaflet map and no data. After sign-in, every layer is read with
 * the user's token (kept in sessionStorage, so it dies with the tab): vector tiles for grids,
 * regions, posts, rings and events; OGC API features for key places, forces and the search; the
 * event and stats APIs for popups, the newest events and the grid colouring. Clicks are answered
 * by the server (/v1/locate for grids, a small bbox query for events) rather than by
 * Leaflet.VectorGrid's own interactivity, which throws on Leaflet 1.9's canvas tiles.
 *
 * window.onemap exposes the state (features drawn per layer, the grid the search landed on) so
 * that the browser test can see what the user sees.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("onemap-config").textContent);
  var map = window[config.map];
  var OPEN = ["reported", "accepted", "dispatched", "returned", "handling", "handled", "reopened"];
  var WINDOWS = { "24h": 24, "7d": 24 * 7, "30d": 24 * 30 };
  var TOKEN_KEY = "geoservice.token";
  var PLACES_FROM_ZOOM = 13; // a street's worth of icons; a whole town of them is noise
  var WALL = new URLSearchParams(window.location.search).get("mode") === "wall"; // the command centre's big screen
  var state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    me: null,
    ready: false,
    drawn: {},
    measure: "open",
    counts: {},
    index: {},
    incidence: {},
    incidenceBreaks: [],
    patrol: {},
    patrolWeek: null,
    located: null,
    layers: {},
    overlays: {},
    timers: [],
    errors: [],
    names: null,
    regionNames: {},
    acted: [],
    conflicts: [],
    pushed: [],
    redSeen: null,
    redAlerts: [],
    live: "closed",
  };
  window.onemap = state;

  // ---------------------------------------------------------------- requests

  function authHeaders() {
    return state.token ? { Authorization: "Bearer " + state.token } : {};
  }

  function api(url, options) {
    options = options || {};
    var headers = Object.assign({ Accept: "application/json" }, authHeaders(), options.headers || {});
    return fetch(url, Object.assign({}, options, { headers: headers })).then(function (response) {
      if (response.status === 401) {
        signOut("请重新登录 your session has ended: sign in again");
        throw new Error("signed out");
      }
      if (response.status === 204) return null;
      return response.json().then(
        function (body) {
          if (!response.ok) {
            var error = new Error(body.detail || response.statusText);
            error.status = response.status;
            error.problem = body;
            throw error;
          }
          return body;
        },
        function () {
          var error = new Error(response.statusText);
          error.status = response.status;
          throw error;
        }
      );
    });
  }

  function query(params) {
    var parts = [];
    Object.keys(params).forEach(function (key) {
      if (params[key] !== null && params[key] !== undefined && params[key] !== "") {
        parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(params[key]));
      }
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  function report(error) {
    if (error && error.message === "signed out") return;
    state.errors.push(String(error && error.message ? error.message : error));
    setText("onemap-search-result", "⚠ " + state.errors[state.errors.length - 1]);
  }

  function setText(id, text) {
    var element = document.getElementById(id);
    if (element) element.textContent = text;
  }

  function escapeHtml(value) {
    return String(value === null || value === undefined ? "" : value).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // ---------------------------------------------------------------- names and times a person reads

  /** The Chinese name of a code of ``kind`` (from /map/names: the city's own data and the server's table). */
  function nameOf(kind, code) {
    if (code === null || code === undefined || code === "") return "—";
    var table = (state.names && state.names[kind]) || {};
    var entry = table[code];
    if (entry === undefined) return String(code);
    return typeof entry === "string" ? entry : entry.name;
  }

  /** A category as 大类 · 小类, its class's name first. */
  function categoryName(code) {
    var table = (state.names && state.names.categories) || {};
    var entry = table[code];
    if (!entry) return String(code || "—");
    var parent = entry.parent && table[entry.parent];
    return parent ? parent.name + " · " + entry.name : entry.name;
  }

  /** The name, and the code after it as secondary text (HTML). */
  function named(kind, code) {
    var name = kind === "categories" ? categoryName(code) : nameOf(kind, code);
    if (code === null || code === undefined || code === "" || name === String(code)) return escapeHtml(name);
    return escapeHtml(name) + ' <small class="onemap-code">' + escapeHtml(code) + "</small>";
  }

  function zone() {
    return (state.names && state.names.time_zone) || "Asia/Shanghai";
  }

  /** An ISO 8601 instant as the city's wall-clock time: 2026-10-31 03:13 (+08:00 in the title). */
  function localTime(iso, withSeconds) {
    if (!iso) return "—";
    var date = new Date(iso);
    if (isNaN(date)) return String(iso);
    var parts = {};
    new Intl.DateTimeFormat("en-CA", {
      timeZone: zone(), year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      second: "2-digit", hourCycle: "h23", timeZoneName: "longOffset",
    }).formatToParts(date).forEach(function (part) {
      parts[part.type] = part.value;
    });
    var text = parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute;
    return withSeconds ? text + ":" + parts.second : text;
  }

  function zoneOffset() {
    var part = new Intl.DateTimeFormat("en-CA", { timeZone: zone(), timeZoneName: "longOffset" })
      .formatToParts(new Date())
      .filter(function (p) {
        return p.type === "timeZoneName";
      })[0];
    var offset = part ? part.value.replace("GMT", "") : "";
    return offset || "+00:00";
  }

  /** How long ago (or from now): 刚刚, 5 分钟前, 2 小时前, 3 天前, 2 小时后. */
  function relativeTime(iso, now) {
    if (!iso) return "";
    var seconds = ((now || Date.now()) - new Date(iso).getTime()) / 1000;
    var future = seconds < 0;
    var s = Math.abs(seconds);
    var text;
    if (s < 60) return future ? "即将" : "刚刚";
    if (s < 3600) text = Math.floor(s / 60) + " 分钟";
    else if (s < 86400) text = Math.floor(s / 3600) + " 小时";
    else if (s < 86400 * 30) text = Math.floor(s / 86400) + " 天";
    else if (s < 86400 * 365) text = Math.floor(s / 86400 / 30) + " 个月";
    else text = Math.floor(s / 86400 / 365) + " 年";
    return text + (future ? "后" : "前");
  }

  /** A time as HTML: local wall-clock time, relative time after it, the ISO instant in the title. */
  function timeHtml(iso) {
    if (!iso) return "—";
    return '<time datetime="' + escapeHtml(iso) + '" title="' + escapeHtml(iso) + '">' + escapeHtml(localTime(iso)) +
      "</time> <small>(" + escapeHtml(relativeTime(iso)) + ")</small>";
  }

  function regionName(code) {
    return (state.regionNames && state.regionNames[code]) || code || "—";
  }

  state.format = { localTime: localTime, relativeTime: relativeTime, nameOf: nameOf, categoryName: categoryName };

  // ---------------------------------------------------------------- sign-in

  function showSignIn(message) {
    document.getElementById("onemap-signin").hidden = false;
    setText("onemap-signin-error", message || "");
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.ready = false;
    state.timers.forEach(clearInterval);
    if (state.liveAbort) state.liveAbort.abort();
    state.timers = [];
    Object.keys(state.layers).forEach(function (name) {
      map.removeLayer(state.layers[name]);
    });
    if (state.control) map.removeControl(state.control);
    if (state.legend) map.removeControl(state.legend);
    state.layers = {};
    showSignIn(message);
  }

  document.getElementById("onemap-signin-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = new FormData(event.target);
    var body = new URLSearchParams({ username: form.get("username"), password: form.get("password") });
    fetch("/v1/auth/token", { method: "POST", body: body })
      .then(function (response) {
        return response.json().then(function (answer) {
          if (!response.ok) throw new Error(answer.detail || "sign-in failed");
          return answer;
        });
      })
      .then(function (answer) {
        state.token = answer.access_token;
        sessionStorage.setItem(TOKEN_KEY, state.token);
        sessionStorage.setItem("geoservice.username", form.get("username")); // the citizens' page greets by it
        document.getElementById("onemap-signin").hidden = true;
        start();
      })
      .catch(function (error) {
        setText("onemap-signin-error", error.message);
      });
  });

  document.getElementById("onemap-signout").addEventListener("click", function () {
    signOut("");
  });

  // ---------------------------------------------------------------- vector tile layers

  function counted(name, style) {
    state.drawn[name] = state.drawn[name] || 0;
    return function (properties, zoom) {
      state.drawn[name] += 1;
      return style(properties, zoom);
    };
  }

  function tileLayer(name, params, style, key) {
    var tiles = config.tiles[name];
    var styles = {};
    styles[name] = counted(key || name, style);
    return L.vectorGrid.protobuf("/tiles/" + name + "/{z}/{x}/{y}.mvt" + query(params || {}), {
      rendererFactory: L.canvas.tile,
      interactive: false,
      minZoom: tiles.minzoom,
      maxNativeZoom: tiles.maxzoom,
      maxZoom: 20,
      fetchOptions: { headers: authHeaders() },
      vectorTileLayerStyles: styles,
    });
  }

  function regionStyle(properties) {
    var weight = { city: 3, town: 2, community: 0.8 }[properties.level] || 1;
    return { color: "#1d2733", weight: weight, fill: false, dashArray: properties.level === "community" ? "3 3" : null };
  }

  function gridStyle(properties) {
    return { color: "#4a5a6a", weight: 0.6, fill: true, fillColor: gridColour(properties), fillOpacity: 0.55 };
  }

  function gridColour(properties) {
    if (state.measure === "index") {
      var index = state.index[properties.community_code];
      if (index === undefined || index === null) return "#dddddd";
      return INDEX_COLOURS[Math.max(0, Math.min(4, Math.floor(index / 20)))]; // 20-point classes, as the legend says
    }
    if (state.measure === "incidence") {
      var rate = state.incidence[properties.community_code];
      if (rate === undefined || rate === null) return "#dddddd";
      return INCIDENCE_COLOURS[incidenceClass(rate)];
    }
    if (state.measure === "patrol") {
      var share = state.patrol[properties.code];
      if (share === undefined || share === null) return "#dddddd";
      return PATROL_COLOURS[Math.max(0, Math.min(4, Math.floor(share * 5)))]; // 20 % classes, as the legend says
    }
    var values = state.counts[properties.code];
    var n = values ? values[state.measure === "overdue" ? 1 : 0] : 0;
    if (!n) return "#f7f7f7";
    var max = state.measure === "overdue" ? state.maxOverdue : state.maxOpen;
    return ramp(["#fee5d9", "#fcae91", "#fb6a4a", "#de2d26", "#a50f15"], Math.sqrt(n / Math.max(1, max)));
  }

  /**
   * Run ``fn`` once the map rests at a whole zoom. Leaflet 1.9's GridLayer.redraw takes the map's
   * zoom as the tiles' zoom without rounding it, so a redraw during a flight asks for tiles such as
   * /tiles/events/13.01/… (refused); redraws wait for the flight to land.
   */
  function whenSettled(fn) {
    if (map.getZoom() % 1 === 0 && !map._animatingZoom) return fn();
    map.once("moveend", function () {
      whenSettled(fn);
    });
  }

  var INDEX_COLOURS = ["#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641"];
  var INCIDENCE_COLOURS = ["#f2f0f7", "#cbc9e2", "#9e9ac8", "#756bb1", "#54278f"];
  var PATROL_READERS = ["admin", "supervisor", "dispatcher", "grid_worker"]; // /v1/stats/patrol-coverage's policy
  var PATROL_COLOURS = ["#f7fcf5", "#c7e9c0", "#74c476", "#31a354", "#006d2c"];

  /** The class (0–4) of an incidence among the communities' quintiles (state.incidenceBreaks). */
  function incidenceClass(rate) {
    var k = 0;
    while (k < state.incidenceBreaks.length && rate > state.incidenceBreaks[k]) k++;
    return Math.min(4, k);
  }

  function ramp(colours, t) {
    var i = Math.max(0, Math.min(colours.length - 1, Math.round(t * (colours.length - 1))));
    return colours[i];
  }

  function postStyle(properties) {
    var radius = { station: 7, central_room: 5, village_room: 3 }[properties.level] || 4;
    var colour = config.postColours[properties.level] || "#333";
    return { radius: radius, fill: true, fillColor: colour, fillOpacity: 0.95, color: "#ffffff", weight: 1 };
  }

  function ringStyle(properties) {
    var colour = config.postColours[properties.level] || "#333";
    return { color: colour, weight: 1.2, fill: true, fillColor: colour, fillOpacity: 0.06 };
  }

  function eventStyle(properties) {
    if (properties.count !== undefined) {
      var worst = properties.red ? "red" : properties.yellow ? "yellow" : properties.blue ? "blue" : "none";
      var radius = Math.min(22, 4 + 3 * Math.log2(1 + properties.count));
      var colour = config.warningColours[worst];
      return { radius: radius, fill: true, fillColor: colour, fillOpacity: 0.6, color: colour, weight: 1 };
    }
    var warning = config.warningColours[properties.warning] || config.warningColours.none;
    return { radius: 5, fill: true, fillColor: warning, fillOpacity: 0.9, color: "#ffffff", weight: 1 };
  }

  function eventParams() {
    var params = {};
    if (document.getElementById("onemap-open-only").checked) params.status = OPEN.join(",");
    var hours = WINDOWS[document.getElementById("onemap-window").value];
    if (hours) {
      var since = new Date(Date.now() - hours * 3600 * 1000);
      since.setSeconds(0, 0); // a minute's requests share one URL, so they share the cache
      params.from = since.toISOString();
    }
    return params;
  }

  // ---------------------------------------------------------------- data layers read as features

  function placesLayer() {
    // Where places pile up (a street of rental housing) they cluster; from zoom 17 each stands alone.
    var group = L.markerClusterGroup({ maxClusterRadius: 36, disableClusteringAtZoom: 17, showCoverageOnHover: false });
    var load = function () {
      if (!map.hasLayer(group)) return;
      if (map.getZoom() < Math.max(config.tiles.places.minzoom, PLACES_FROM_ZOOM)) {
        group.clearLayers();
        return;
      }
      var b = map.getBounds();
      var bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) {
        return v.toFixed(6);
      });
      api("/collections/places/items" + query({ bbox: bbox.join(","), limit: 1000 }))
        .then(function (page) {
          group.clearLayers();
          page.features.forEach(function (feature) {
            var symbol = config.placeSymbols[feature.properties.type] || ["·", "#555"];
            var layer = L.geoJSON(feature, {
              pointToLayer: function (_, latlng) {
                return L.marker(latlng, {
                  icon: L.divIcon({
                    className: "onemap-place",
                    html: '<span style="background:' + symbol[1] + '">' + symbol[0] + "</span>",
                    iconSize: [18, 18],
                  }),
                });
              },
              style: { color: symbol[1], weight: 1, fillOpacity: 0.2 },
            });
            layer.bindTooltip(escapeHtml(feature.properties.name) + " · " + named("place_types", feature.properties.type));
            group.addLayer(layer);
          });
          state.drawn.places = (state.drawn.places || 0) + page.features.length;
        })
        .catch(report);
    };
    map.on("moveend", load);
    group.on("add", load);
    return group;
  }

  function forcesLayer() {
    var group = L.layerGroup();
    var load = function () {
      if (!map.hasLayer(group)) return;
      api("/collections/forces/items" + query({ limit: 1000 }))
        .then(function (page) {
          group.clearLayers();
          page.features.forEach(function (feature) {
            var p = feature.properties;
            var colour = p.kind === "patrol" ? "#1f78b4" : "#33a02c";
            var latlng = [feature.geometry.coordinates[1], feature.geometry.coordinates[0]];
            L.circleMarker(latlng, { radius: 6, color: "#ffffff", weight: 2, fillColor: colour, fillOpacity: p.available ? 1 : 0.4 })
              .bindTooltip(escapeHtml(p.display_name || p.username) + " · " + (p.kind === "patrol" ? "巡逻力量" : "网格员") +
                (p.available ? " · 可调派" : " · 忙碌") + "<br>" + timeHtml(p.at))
              .addTo(group);
          });
          state.drawn.forces = page.features.length;
        })
        .catch(report);
    };
    group.on("add", load);
    state.timers.push(setInterval(load, config.forcesRefreshMs));
    return group;
  }

  function gapsLayer(level) {
    var group = L.layerGroup();
    var loaded = false;
    group.on("add", function () {
      if (loaded) return;
      loaded = true;
      api("/v1/coverage" + query({ format: "geojson", level: level }))
        .then(function (collection) {
          var colour = config.postColours[level];
          L.geoJSON(collection, {
            style: { color: colour, weight: 0, fillColor: "#d7301f", fillOpacity: 0.22 }, // translucent: the grids show through
            onEachFeature: function (feature, layer) {
              var p = feature.properties;
              layer.bindTooltip(escapeHtml(p.unit_name) + "：" + p.gap_km2.toFixed(2) + " km² 在 " + p.radius_m + " 米覆盖圈外");
            },
          }).addTo(group);
          state.drawn["gaps_" + level] = collection.features.length;
        })
        .catch(function (error) {
          loaded = false;
          report(error);
        });
    });
    return group;
  }

  /**
   * A boundary draft over the version in force (/map?draft=ID): the draft's grids dashed, what its
   * publication would change (grids added / changed / removed; places, posts and open events that
   * would move) and its validation errors in red, each located as the planner's API reports them.
   */
  var DRAFT_CHANGE_COLOURS = { added: "#1a9850", changed: "#fd8d3c", removed: "#636363" };

  function draftLayers(id) {
    var base = "/v1/boundary-versions/" + encodeURIComponent(id);
    function overlay(name, url, options) {
      var group = L.layerGroup();
      api(url)
        .then(function (collection) {
          L.geoJSON(collection, options).addTo(group);
          state.drawn[name] = collection.features.length;
        })
        .catch(report);
      return group;
    }
    function describe(feature, layer) {
      var p = feature.properties;
      var text = [p.code, p.name, p.change, p.kind, p.message].filter(function (v) {
        return v !== undefined && v !== null && v !== "";
      });
      layer.bindTooltip(escapeHtml(text.join(" · ")));
    }
    var dot = function (colour) {
      return function (_, latlng) {
        return L.circleMarker(latlng, { radius: 5, color: colour, weight: 2, fillOpacity: 0.8 });
      };
    };
    return {
      draft_grids: overlay("draft_grids", base + "/grids", {
        style: { color: "#225ea8", weight: 1.5, dashArray: "4 3", fill: false },
        onEachFeature: describe,
      }),
      draft_changes: overlay("draft_changes", base + "/impact" + query({ format: "geojson" }), {
        style: function (feature) {
          var colour = DRAFT_CHANGE_COLOURS[feature.properties.change] || "#fd8d3c";
          return { color: colour, weight: 2, fillColor: colour, fillOpacity: 0.35 };
        },
        pointToLayer: dot("#fd8d3c"),
        onEachFeature: describe,
      }),
      draft_errors: overlay("draft_errors", base + "/validation" + query({ format: "geojson" }), {
        style: { color: "#d7301f", weight: 4, fillColor: "#d7301f", fillOpacity: 0.5 },
        pointToLayer: dot("#d7301f"),
        onEachFeature: describe,
      }),
    };
  }

  function heatLayer() {
    var layer = L.heatLayer([], { radius: 18, blur: 16, maxZoom: 15, minOpacity: 0.3 });
    var load = function () {
      if (!map.hasLayer(layer)) return;
      api("/map/heat" + query(eventParams()))
        .then(function (answer) {
          layer.setLatLngs(answer.points);
          state.drawn.heat = answer.points.length;
        })
        .catch(report);
    };
    layer.on("add", load);
    layer.reload = load;
    return layer;
  }

  function labelsLayer() {
    var group = L.layerGroup();
    var labels = [];
    var show = function () {
      group.clearLayers();
      var zoom = map.getZoom();
      labels.forEach(function (label) {
        if (label.level === "town" || (label.level === "community" && zoom >= 13)) {
          L.marker([label.lat, label.lon], {
            interactive: false,
            icon: L.divIcon({ className: "onemap-label onemap-label-" + label.level, html: escapeHtml(label.name), iconSize: null }),
          }).addTo(group);
        }
      });
      state.drawn.labels = group.getLayers().length;
    };
    group.on("add", function () {
      if (labels.length) return show();
      api("/map/labels")
        .then(function (answer) {
          labels = answer.labels;
          labels.forEach(function (label) {
            state.regionNames[label.code] = label.name;
          });
          show();
        })
        .catch(report);
    });
    map.on("zoomend", function () {
      if (map.hasLayer(group)) show();
    });
    return group;
  }

  // ---------------------------------------------------------------- measures, clicks, search, panel

  function loadMeasure() {
    var measure = document.getElementById("onemap-measure").value;
    state.measure = measure;
    var counts = api("/map/grid-measures").then(function (answer) {
      state.counts = answer.grids;
      state.maxOpen = answer.max_open;
      state.maxOverdue = answer.max_overdue;
    });
    var index = measure !== "index" && measure !== "incidence" ? Promise.resolve() : loadIndex();
    var patrol = measure === "patrol" ? loadPatrol() : Promise.resolve();
    return Promise.all([counts, index, patrol])
      .then(function () {
        if (state.layers.grids) whenSettled(function () {
          state.layers.grids.redraw();
        });
        if (state.legend) state.legend.update();
      })
      .catch(report);
  }

  function loadIndex() {
    var month = function (date) {
      return date.toISOString().slice(0, 7);
    };
    var now = new Date();
    var last = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 15));
    var ranking = function (m) {
      return api("/v1/stats/ranking" + query({ month: m, level: "community" })).then(function (answer) {
        answer.month = m;
        return answer;
      });
    };
    return ranking(month(now)).then(function (answer) {
      var busy = answer.rows.some(function (row) {
        return row.events > 0;
      });
      return busy ? answer : ranking(month(last));
    }).then(function (answer) {
      state.index = {};
      state.incidence = {};
      state.indexMonth = answer.month;
      answer.rows.forEach(function (row) {
        state.index[row.code] = row.index;
        state.incidence[row.code] = row.incidence;
        state.incidencePer = row.incidence_per;
      });
      // Quintile breaks of the communities' incidence: five classes of about as many communities each.
      var rates = answer.rows.map(function (row) {
        return row.incidence;
      }).filter(function (v) {
        return v !== null && v !== undefined;
      }).sort(function (a, b) {
        return a - b;
      });
      state.incidenceBreaks = [1, 2, 3, 4].map(function (q) {
        return rates.length ? rates[Math.min(rates.length - 1, Math.floor(q * rates.length / 5))] : 0;
      });
    });
  }

  /** This week's patrol coverage of each grid in the user's scope (share of its area within 30 m of a track). */
  function loadPatrol() {
    return api("/v1/stats/patrol-coverage").then(function (answer) {
      state.patrol = {};
      state.patrolWeek = answer.week;
      state.patrolCoverM = answer.cover_m;
      answer.grids.forEach(function (row) {
        state.patrol[row.grid_code] = row.share;
      });
    });
  }

  function gridPopup(answer) {
    var counts = state.counts[answer.grid.code] || [0, 0];
    var workers = (answer.grid.workers || []).join("、") || "—";
    return (
      '<div class="onemap-popup" data-grid="' + escapeHtml(answer.grid.code) + '">' +
      "<b>" + escapeHtml(answer.grid.name) + '</b> <small class="onemap-code">' + escapeHtml(answer.grid.code) + "</small><br>" +
      "社区 " + escapeHtml(answer.community.name) + ' <small class="onemap-code">' + escapeHtml(answer.community.code) + "</small><br>" +
      "镇街 " + escapeHtml(answer.town.name) + "<br>" +
      "网格员 " + escapeHtml(workers) + "<br>" +
      "民警 " + escapeHtml(answer.grid.officer || "—") + "<br>" +
      "在办事件 " + counts[0] + " · 超期 " + counts[1] + ' <small class="onemap-code">open / overdue</small>' +
      "</div>"
    );
  }

  function showGridAt(latlng) {
    return api("/v1/locate" + query({ lon: latlng.lng.toFixed(7), lat: latlng.lat.toFixed(7) }))
      .then(function (answer) {
        L.popup().setLatLng(latlng).setContent(gridPopup(answer)).openOn(map);
        return answer;
      })
      .catch(report);
  }

  // ---------------------------------------------------------------- the workbench: acting on an event

  /**
   * An event's popup is where the dispatcher acts: the buttons are the event's ``allowed_actions``
   * (what the server says this user may do now), in Chinese; each posts to the same transitions API
   * with the ``row_version`` read (optimistic lock). Dispatch offers the proposed department and
   * co-departments, or the nearest available forces with their distance; escalate, supervise (督办)
   * and merge duplicates have their own small forms. A refusal because someone else acted first
   * names who did what and when, and the popup shows the event as it is now.
   */
  var NOTE_REQUIRED = { reject: true, "return": true, reopen: true, escalate: true, return_down: true };
  var SIMPLE_ACTIONS = ["accept", "start", "feedback", "verify", "archive", "reject", "return", "reopen", "escalate",
                        "return_down", "evaluate"];

  function popupOf(id) {
    var popup = state.eventPopup;
    return popup && map.hasLayer(popup) && String(popup.eventId) === String(id) ? popup : null;
  }

  /** Show (or, with ``onlyIfOpen``, refresh an open popup of) event ``id``; a form being filled in is left alone. */
  function showEvent(id, latlng, notice, onlyIfOpen) {
    return api("/v1/events/" + id)
      .then(function (event) {
        if (onlyIfOpen) {
          var open = popupOf(event.id);
          var content = open && open.getContent();
          var busy = !notice && content && content.querySelector && content.querySelector(".onemap-act-form form");
          if (!open || busy) return event;
        }
        state.openEvent = event;
        var card = eventCard(event, notice);
        var popup = popupOf(event.id) || L.popup({ maxWidth: 380, minWidth: 300, autoPanPaddingTopLeft: [60, 70] });
        popup.eventId = event.id;
        popup.setLatLng(latlng || [event.lat, event.lon]).setContent(card);
        if (!map.hasLayer(popup)) popup.openOn(map);
        state.eventPopup = popup;
        return event;
      })
      .catch(report);
  }

  function eventCard(event, notice) {
    var div = document.createElement("div");
    div.className = "onemap-popup";
    div.setAttribute("data-event", event.id);
    div.setAttribute("data-version", event.row_version);
    div.setAttribute("data-warning", event.warning);
    div.setAttribute("data-status", event.status);
    var place = [regionName(event.town_code), regionName(event.community_code)].filter(function (v) {
      return v && v !== "—";
    }).join(" · ");
    div.innerHTML =
      "<b>#" + event.id + " " + named("categories", event.category_code) + "</b><br>" +
      "状态 " + named("statuses", event.status) + " · " +
      '<span class="onemap-warning onemap-warning-' + escapeHtml(event.warning) + '">● ' + escapeHtml(nameOf("warnings", event.warning)) + "</span>" +
      (event.supervised ? ' · <span class="onemap-badge">督办</span>' : "") + "<br>" +
      "上报 " + timeHtml(event.reported_at) + "<br>" +
      "期限 " + (event.due_at ? timeHtml(event.due_at) : "—") + (event.overdue ? ' <b class="onemap-warning-red">超期</b>' : "") + "<br>" +
      "地点 " + escapeHtml(place || "—") + ' <small class="onemap-code">' + escapeHtml(event.grid_code || "") + "</small><br>" +
      "责任 " + named("levels", event.escalation_level) + " · 部门 " + named("departments", event.department_code) + "<br>" +
      (event.description ? '<div class="onemap-description">' + escapeHtml(event.description) + "</div>" : "") +
      '<small class="onemap-code">' + escapeHtml(event.route_reason || "") + "</small><br>" +
      '<div class="onemap-actions"></div><div class="onemap-act-form"></div>' +
      '<p class="onemap-act-result" role="status"></p>' +
      '<a href="#" class="onemap-log-link" data-event="' + event.id + '">事件日志</a>';
    var actions = div.querySelector(".onemap-actions");
    var allowed = (event.allowed_actions || []).slice();
    var role = state.me && state.me.role;
    if (role === "supervisor" || role === "admin") allowed.push("supervise");
    allowed.forEach(function (action) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "onemap-act";
      button.setAttribute("data-action", action);
      button.textContent = nameOf("actions", action);
      button.title = action;
      button.addEventListener("click", function () {
        openForm(div, event, action);
      });
      actions.appendChild(button);
    });
    if (!allowed.length) actions.innerHTML = '<small>您现在对此事件无可执行的操作</small>';
    if (notice) showResult(div, notice, notice.charAt(0) !== "✓");
    div.querySelector(".onemap-log-link").addEventListener("click", function (e) {
      e.preventDefault();
      showLog(event.id);
    });
    L.DomEvent.disableClickPropagation(div);
    return div;
  }

  function showResult(card, text, warning) {
    var result = card.querySelector(".onemap-act-result");
    result.textContent = text;
    result.className = "onemap-act-result" + (warning ? " onemap-error" : " onemap-ok");
  }

  function noteField(action) {
    var required = NOTE_REQUIRED[action];
    return '<textarea name="note" rows="2" placeholder="' + (required ? "说明原因（必填）" : "备注（可选）") + '"' +
      (required ? " required" : "") + "></textarea>";
  }

  function openForm(card, event, action) {
    var area = card.querySelector(".onemap-act-form");
    var form = document.createElement("form");
    form.className = "onemap-form";
    form.setAttribute("data-action", action);
    var title = "<b>" + escapeHtml(nameOf("actions", action)) + "</b> #" + event.id + "<br>";
    if (action === "dispatch") {
      var departments = (state.names && state.names.departments) || {};
      var options = Object.keys(departments).map(function (code) {
        return '<option value="' + escapeHtml(code) + '"' + (code === event.department_code ? " selected" : "") + ">" +
          escapeHtml(departments[code].name) + (code === event.department_code ? "（建议）" : "") + "</option>";
      }).join("");
      var co = Object.keys(departments).filter(function (code) {
        return code !== event.department_code;
      }).map(function (code) {
        return '<label class="onemap-co"><input type="checkbox" name="co" value="' + escapeHtml(code) + '"> ' +
          escapeHtml(departments[code].name) + "</label>";
      }).join("");
      form.innerHTML = title +
        '<label>主办部门 <select name="department">' + options + "</select></label>" +
        '<details><summary>协办部门</summary><div class="onemap-co-list">' + co + "</div></details>" +
        noteField(action) + '<button type="submit">派遣到部门</button>' +
        '<div class="onemap-forces"><small>正在查找最近的可调派力量…</small></div>';
      loadForces(card, event, form.querySelector(".onemap-forces"));
    } else if (action === "supervise") {
      form.innerHTML = title + '<textarea name="instruction" rows="2" required placeholder="督办要求（必填）"></textarea>' +
        '<label>回复时限 <select name="hours"><option value="2">2 小时</option><option value="4">4 小时</option>' +
        '<option value="24" selected>24 小时</option><option value="72">3 天</option></select></label>' +
        '<button type="submit">发出督办</button>';
    } else if (action === "merge") {
      form.innerHTML = title + '<div class="onemap-duplicates"><small>正在查找可能的重复事件…</small></div>';
      loadDuplicates(card, event, form.querySelector(".onemap-duplicates"));
    } else if (action === "evaluate") {
      form.innerHTML = title + '<label>满意度 <select name="satisfaction"><option value="5">5 很满意</option>' +
        '<option value="4">4 满意</option><option value="3">3 一般</option><option value="2">2 不满意</option>' +
        '<option value="1">1 很不满意</option></select></label>' + noteField(action) + '<button type="submit">提交</button>';
    } else {
      form.innerHTML = title + noteField(action) + '<button type="submit">确认' + escapeHtml(nameOf("actions", action)) + "</button>";
    }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var data = new FormData(form);
      if (action === "supervise") {
        var order = { instruction: String(data.get("instruction") || "").trim(), reply_hours: Number(data.get("hours")) };
        return act(card, event, "/v1/events/" + event.id + "/supervision", order, "已发出督办");
      }
      var body = { action: action, expected_version: event.row_version, note: String(data.get("note") || "").trim() };
      if (action === "dispatch") {
        body.department_code = data.get("department");
        var co = data.getAll("co");
        if (co.length) body.co_departments = co;
      }
      if (action === "evaluate") body.satisfaction = Number(data.get("satisfaction"));
      act(card, event, "/v1/events/" + event.id + "/transitions", body, "已" + nameOf("actions", action));
    });
    area.innerHTML = "";
    area.appendChild(form);
    var first = form.querySelector("textarea, select, button");
    if (first) first.focus();
  }

  function loadForces(card, event, box) {
    var role = state.me && state.me.role;
    if (role !== "dispatcher" && role !== "admin") {
      box.innerHTML = "";
      return;
    }
    api("/v1/events/" + event.id + "/nearest-forces" + query({ limit: 5 }))
      .then(function (answer) {
        if (!answer.available.length) {
          box.innerHTML = "<small>附近暂无可调派的力量（忙碌 " + answer.busy.length + "，位置未知 " + answer.unknown.length + "）</small>";
          return;
        }
        box.innerHTML = "<b>或派给最近的力量</b><ol>" + answer.available.map(function (force) {
          return '<li><button type="button" class="onemap-force" data-username="' + escapeHtml(force.username) +
            '" data-name="' + escapeHtml(force.display_name || force.username) + '">派遣</button> ' +
            escapeHtml(force.display_name || force.username) + " · " + (force.kind === "patrol" ? "巡逻力量" : "网格员") +
            " · " + Math.round(force.distance_m).toLocaleString("zh-CN") + " 米 <small>(" + escapeHtml(relativeTime(force.at)) + "定位)</small></li>";
        }).join("") + "</ol>";
        box.querySelectorAll(".onemap-force").forEach(function (button) {
          button.addEventListener("click", function () {
            var body = { username: button.getAttribute("data-username"), expected_version: event.row_version };
            act(card, event, "/v1/events/" + event.id + "/nearest-forces/dispatch", body, "已派遣给 " + button.getAttribute("data-name"));
          });
        });
      })
      .catch(function (error) {
        box.innerHTML = "<small>" + escapeHtml(error.message) + "</small>";
      });
  }

  function loadDuplicates(card, event, box) {
    api("/v1/events/" + event.id + "/duplicates")
      .then(function (answer) {
        var found = answer.possible_duplicates || [];
        if (!found.length) {
          box.innerHTML = "<small>附近没有同类的在办事件</small>";
          return;
        }
        box.innerHTML = "<small>把本事件并入（主事件）：</small><ol>" + found.map(function (other) {
          return '<li><button type="button" class="onemap-merge" data-into="' + other.id + '">并入 #' + other.id + "</button> " +
            escapeHtml(categoryName(other.category_code)) + " · " + escapeHtml(nameOf("statuses", other.status)) +
            (other.distance_m !== undefined ? " · " + Math.round(other.distance_m) + " 米" : "") + "</li>";
        }).join("") + "</ol>";
        box.querySelectorAll(".onemap-merge").forEach(function (button) {
          button.addEventListener("click", function () {
            var into = Number(button.getAttribute("data-into"));
            act(card, event, "/v1/events/" + event.id + "/merge", { into: into }, "已并入 #" + into);
          });
        });
      })
      .catch(function (error) {
        box.innerHTML = "<small>" + escapeHtml(error.message) + "</small>";
      });
  }

  /** Post one step; on success the popup, the queue and the map show the event as it is now. */
  function act(card, event, url, body, done) {
    card.querySelectorAll("button").forEach(function (b) {
      b.disabled = true;
    });
    showResult(card, "…", false);
    return api(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function () {
        state.acted.push({ id: event.id, url: url, body: body });
        refreshAfterChange();
        return showEvent(event.id, null, "✓ " + done, true);
      })
      .catch(function (error) {
        if (error.message === "signed out") return;
        if (error.status === 409 || error.status === 412 || error.status === 403) return explainRefusal(event, error);
        card.querySelectorAll("button").forEach(function (b) {
          b.disabled = false;
        });
        showResult(card, "⚠ " + error.message, true);
      });
  }

  /** Someone acted first (or the step is not allowed now): say who did what and when, show the event as it is. */
  function explainRefusal(event, error) {
    return Promise.all([api("/v1/events/" + event.id), api("/v1/events/" + event.id + "/log")]).then(function (both) {
      var now = both[0];
      var text = "⚠ " + error.message;
      if (now.row_version !== event.row_version) {
        var entries = both[1].entries;
        var last = entries[entries.length - 1];
        text = "⚠ 事件已被他人更新：" + last.actor + "（" + nameOf("roles", last.role) + "）于 " + localTime(last.at) +
          "（" + relativeTime(last.at) + "）" + nameOf("actions", last.action) + "，现为「" + nameOf("statuses", now.status) +
          "」。请按当前状态重新操作。";
      }
      state.conflicts.push(text);
      refreshAfterChange();
      return showEvent(event.id, null, text, true);
    });
  }

  function showLog(id) {
    api("/v1/events/" + id + "/log")
      .then(function (log) {
        var section = document.getElementById("onemap-log");
        var list = section.querySelector("ol");
        section.querySelector("h2 span").textContent = "#" + id;
        list.innerHTML = log.entries
          .map(function (entry) {
            return "<li>" + timeHtml(entry.at) + "<br>" + escapeHtml(entry.actor) + "（" + escapeHtml(nameOf("roles", entry.role)) +
              "）" + escapeHtml(nameOf("actions", entry.action)) + "：" + named("statuses", entry.from_status) + " → " +
              named("statuses", entry.to_status) + (entry.note ? "<br><q>" + escapeHtml(entry.note) + "</q>" : "") + "</li>";
          })
          .join("");
        section.hidden = false;
      })
      .catch(report);
  }

  document.getElementById("onemap-log-close").addEventListener("click", function () {
    document.getElementById("onemap-log").hidden = true;
  });

  function eventNear(latlng) {
    var point = map.latLngToContainerPoint(latlng);
    var sw = map.containerPointToLatLng([point.x - 8, point.y + 8]);
    var ne = map.containerPointToLatLng([point.x + 8, point.y - 8]);
    var bbox = [sw.lng, sw.lat, ne.lng, ne.lat].map(function (v) {
      return v.toFixed(7);
    });
    return api("/collections/events/items" + query({ bbox: bbox.join(","), limit: 20 })).then(function (page) {
      var best = null;
      page.features.forEach(function (feature) {
        var here = map.latLngToContainerPoint([feature.geometry.coordinates[1], feature.geometry.coordinates[0]]);
        var d = here.distanceTo(point);
        if (d <= 8 && (!best || d < best.d)) best = { d: d, feature: feature };
      });
      return best && best.feature;
    });
  }

  map.on("click", function (e) {
    if (!state.ready) return;
    var events = state.layers.events;
    var near = events && map.hasLayer(events) && map.getZoom() >= config.tiles.events.clusterUntil
      ? eventNear(e.latlng)
      : Promise.resolve(null);
    near
      .then(function (feature) {
        if (feature) return showEvent(feature.id, e.latlng);
        if (state.layers.grids && map.hasLayer(state.layers.grids)) return showGridAt(e.latlng);
      })
      .catch(report);
  });

  document.getElementById("onemap-search").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = document.getElementById("onemap-search-input").value.trim();
    var crs = document.getElementById("onemap-search-crs").value;
    var numbers = text.split(/[\s,，]+/).filter(Boolean).map(Number);
    if (numbers.length !== 2 || numbers.some(isNaN)) {
      setText("onemap-search-result", "请输入 lon,lat e.g. 120.57,32.39");
      return;
    }
    setText("onemap-search-result", "…");
    api("/v1/locate" + query({ lon: numbers[0], lat: numbers[1], crs: crs }))
      .then(function (answer) {
        return api("/collections/grids/items/" + encodeURIComponent(answer.grid.code)).then(function (feature) {
          if (state.highlight) map.removeLayer(state.highlight);
          state.highlight = L.geoJSON(feature, { style: { color: "#00e5ff", weight: 3, fill: false } }).addTo(map);
          var bounds = state.highlight.getBounds();
          map.flyToBounds(bounds, { maxZoom: 16, duration: 0.6 });
          map.once("moveend", function () {
            L.popup().setLatLng(bounds.getCenter()).setContent(gridPopup(answer)).openOn(map);
          });
          state.located = answer.grid.code;
          setText("onemap-search-result", "→ " + answer.grid.code + " " + answer.grid.name +
            (answer.snapped_m ? " (snapped " + answer.snapped_m.toFixed(0) + " m)" : ""));
        });
      })
      .catch(report);
  });

  // ---------------------------------------------------------------- the queue panel and the live channel

  /**
   * The panel lists the events under the map's filters (open only, time window, colour, category,
   * region; "mine": the events the user acts for now), in the user's scope (the server's), with the
   * count of each warning colour, and flags an event that turned red since the last look. The map's
   * event layer follows the same filters.
   */
  function filterValues() {
    var value = function (id) {
      var element = document.getElementById(id);
      return element ? element.value : "";
    };
    return {
      warning: value("onemap-filter-warning"),
      category: value("onemap-filter-category"),
      region: value("onemap-filter-region"),
      mine: document.getElementById("onemap-filter-mine").checked,
    };
  }

  function refreshQueue() {
    if (!state.ready) return Promise.resolve();
    var f = filterValues();
    var base = eventParams();
    var listed = Object.assign({}, base, { warning: f.warning, category: f.category, region: f.region,
                                           owner: f.mine ? "mine" : null, limit: 30, sort: "-reported_at" });
    var counted = Object.assign({}, base, { category: f.category, region: f.region, owner: f.mine ? "mine" : null });
    return Promise.all([api("/v1/events" + query(listed)), api("/map/warning-counts" + query(counted))])
      .then(function (both) {
        var page = both[0];
        var counts = both[1].counts;
        var now = Date.now();
        var list = document.getElementById("onemap-newest");
        list.innerHTML = page.items
          .map(function (event) {
            return '<li data-event="' + event.id + '" data-lon="' + event.lon + '" data-lat="' + event.lat +
              '" data-warning="' + escapeHtml(event.warning) + '" data-status="' + escapeHtml(event.status) + '">' +
              '<span class="onemap-warning onemap-warning-' + escapeHtml(event.warning) + '" title="' +
              escapeHtml(nameOf("warnings", event.warning)) + '">●</span> #' + event.id + " " +
              escapeHtml(categoryName(event.category_code)) + " · <b>" + escapeHtml(nameOf("statuses", event.status)) + "</b>" +
              (event.overdue ? ' <b class="onemap-warning-red">超期</b>' : "") + (event.supervised ? ' <span class="onemap-badge">督办</span>' : "") +
              "<br><small>" + escapeHtml(regionName(event.community_code || event.town_code)) + " · " +
              '<time datetime="' + escapeHtml(event.reported_at) + '" title="' + escapeHtml(localTime(event.reported_at, true)) + '">' +
              escapeHtml(relativeTime(event.reported_at, now)) + "</time>" +
              (event.due_at ? " · 期限 " + escapeHtml(relativeTime(event.due_at, now)) : "") +
              ' <span class="onemap-code">' + escapeHtml(event.status) + "</span></small></li>";
          })
          .join("");
        ["red", "yellow", "blue", "none"].forEach(function (colour) {
          setText("onemap-count-" + colour, counts[colour]);
        });
        setText("onemap-count-total", counts.total);
        state.counted = counts;
        var duties = both[1].duties;
        document.getElementById("onemap-duties").hidden = !duties || !duties.total;
        if (duties) {
          setText("onemap-duties-red", duties.red);
          setText("onemap-duties-yellow", duties.yellow);
          setText("onemap-duties-total", duties.total);
        }
        state.duties = duties;
        flagNewRed(page.items);
        setText("onemap-panel-updated", localTime(new Date().toISOString(), true).slice(11));
        state.newest = page.items.length;
        state.queueItems = page.items.map(function (e) {
          return { id: e.id, status: e.status, warning: e.warning };
        });
      })
      .catch(report);
  }

  function flagNewRed(items) {
    var red = items.filter(function (e) {
      return e.warning === "red";
    });
    if (state.redSeen !== null) {
      var fresh = red.filter(function (e) {
        return !state.redSeen[e.id];
      });
      if (fresh.length) {
        var first = fresh[0];
        var alert = document.getElementById("onemap-alert");
        alert.innerHTML = '<b class="onemap-warning-red">●</b> 新红色预警 #' + first.id + " " + escapeHtml(categoryName(first.category_code)) + " · " +
          escapeHtml(regionName(first.community_code || first.town_code)) + (fresh.length > 1 ? " 等 " + fresh.length + " 件" : "");
        alert.setAttribute("data-event", first.id);
        alert.setAttribute("data-lon", first.lon);
        alert.setAttribute("data-lat", first.lat);
        alert.hidden = false;
        state.redAlerts.push(first.id);
      }
    }
    state.redSeen = state.redSeen || {};
    red.forEach(function (e) {
      state.redSeen[e.id] = true;
    });
  }

  function goToEvent(item) {
    var latlng = [Number(item.getAttribute("data-lat")), Number(item.getAttribute("data-lon"))];
    var id = item.getAttribute("data-event");
    // The popup opens where the flight ends. Opened during it, the popup rode the moving map and its
    // own pan into view fought the flight, so a click aimed at one of its buttons could land on the
    // map below (seen in the suite: a grid's popup replaced the event's as the dispatcher clicked).
    // A flight cut short by the next choice never ends: only the last chosen event is shown.
    if (state.flightEnd) map.off("moveend", state.flightEnd);
    state.flightEnd = function () {
      state.flightEnd = null;
      showEvent(id, latlng);
    };
    map.once("moveend", state.flightEnd);
    map.flyTo(latlng, Math.max(map.getZoom(), 16), { duration: 0.6 });
  }

  document.getElementById("onemap-newest").addEventListener("click", function (event) {
    var item = event.target.closest("li");
    if (item) goToEvent(item);
  });
  document.getElementById("onemap-alert").addEventListener("click", function (event) {
    goToEvent(event.currentTarget);
    event.currentTarget.hidden = true;
  });

  /** After a change (one's own or pushed): the queue, the grid measures, the event tiles and an open popup. */
  function refreshAfterChange(eventIds) {
    clearTimeout(state.changeTimer);
    state.changeTimer = setTimeout(function () {
      refreshQueue();
      loadMeasure();
      if (state.layers.events && map.hasLayer(state.layers.events)) whenSettled(function () {
        state.layers.events.redraw();
      });
      var open = state.eventPopup && map.hasLayer(state.eventPopup) ? state.eventPopup.eventId : null;
      if (open && eventIds && eventIds.indexOf(open) >= 0) showEvent(open, null, null, true);
    }, 300);
  }

  /**
   * /v1/live as Server-Sent Events, read with fetch (EventSource cannot send the bearer header): each
   * pushed event change refreshes what shows it. A stream ends after a while; the next one starts at
   * the last id seen, so nothing is missed.
   */
  function listen() {
    if (!state.token || state.listening) return;
    state.listening = true;
    var headers = Object.assign({ Accept: "text/event-stream" }, authHeaders());
    if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
    var controller = new AbortController();
    state.liveAbort = controller;
    fetch("/v1/live", { headers: headers, signal: controller.signal })
      .then(function (response) {
        if (!response.ok || !response.body) throw new Error("live " + response.status);
        state.live = "open";
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        var pump = function () {
          return reader.read().then(function (chunk) {
            if (chunk.done) return;
            buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n/g, "\n");
            var blocks = buffer.split("\n\n");
            buffer = blocks.pop();
            blocks.forEach(onLiveMessage);
            return pump();
          });
        };
        return pump();
      })
      .catch(function () {
        state.live = "closed";
      })
      .then(function () {
        state.listening = false;
        if (state.token && state.ready) setTimeout(listen, 2000);
      });
  }

  function onLiveMessage(block) {
    var message = { event: "message", data: "" };
    block.split("\n").forEach(function (line) {
      var colon = line.indexOf(":");
      if (colon <= 0) return;
      var field = line.slice(0, colon);
      var value = line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") message.data += value;
      else message[field] = value;
    });
    if (message.id) state.lastEventId = message.id;
    if (message.event === "event_change") {
      var change = JSON.parse(message.data || "{}");
      state.pushed.push(change);
      refreshAfterChange([change.event_id]);
      tick(change);
    } else if (message.event === "notification") {
      var note = JSON.parse(message.data || "{}");
      state.pushed.push(note);
      setText("onemap-live-note", "🔔 " + (note.title || ""));
      refreshAfterChange(note.event_id ? [note.event_id] : []);
    }
  }

  function refilterEvents() {
    var params = eventParams();
    var f = filterValues();
    params.warning = f.warning;
    params.category = f.category;
    if (state.layers.events) whenSettled(function () {
      state.layers.events.setUrl("/tiles/events/{z}/{x}/{y}.mvt" + query(params));
    });
    if (state.layers.heat) state.layers.heat.reload();
    refreshQueue();
  }

  function fillFilters() {
    var categories = (state.names && state.names.categories) || {};
    var select = document.getElementById("onemap-filter-category");
    select.innerHTML = '<option value="">全部类别</option>' + Object.keys(categories).filter(function (code) {
      return !categories[code].parent;
    }).map(function (code) {
      return '<option value="' + escapeHtml(code) + '">' + escapeHtml(categories[code].name) + "</option>";
    }).join("");
    var warnings = document.getElementById("onemap-filter-warning");
    warnings.innerHTML = '<option value="">全部预警</option>' + ["red", "yellow", "blue", "none"].map(function (w) {
      return '<option value="' + w + '">' + escapeHtml(nameOf("warnings", w)) + "</option>";
    }).join("");
    api("/map/labels").then(function (answer) {
      var regions = document.getElementById("onemap-filter-region");
      regions.innerHTML = '<option value="">全部区域</option>' + answer.labels.filter(function (label) {
        return label.level === "town";
      }).map(function (label) {
        state.regionNames[label.code] = label.name;
        return '<option value="' + escapeHtml(label.code) + '">' + escapeHtml(label.name) + "</option>";
      }).join("");
      answer.labels.forEach(function (label) {
        state.regionNames[label.code] = label.name;
      });
    }).catch(report);
  }

  document.getElementById("onemap-measure").addEventListener("change", loadMeasure);
  ["onemap-window", "onemap-open-only", "onemap-filter-warning", "onemap-filter-category", "onemap-filter-region",
   "onemap-filter-mine"].forEach(function (id) {
    document.getElementById(id).addEventListener("change", refilterEvents);
  });

  // ---------------------------------------------------------------- wall mode (大屏)

  /**
   * /map?mode=wall: the map of the user's area with today's figures beside it — reported today, open,
   * red and yellow warnings, the 30-day trend, the top categories of the week, the governance ranking
   * and a live ticker fed by the push channel. Every figure is read with the user's token from the
   * same APIs (stats, warning counts, events), so a town's screen shows the town.
   */
  function dayStart(daysBack) {
    var today = localTime(new Date(Date.now() - daysBack * 86400000).toISOString()).slice(0, 10);
    return today + "T00:00:00" + zoneOffset();
  }

  function refreshWall() {
    var month = localTime(new Date().toISOString()).slice(0, 7);
    var today = api("/v1/stats/counts" + query({ by: "status", from: dayStart(0) })).then(function (answer) {
      setText("onemap-wall-today", answer.total);
    });
    var open = api("/map/warning-counts" + query({ status: OPEN.join(",") })).then(function (answer) {
      setText("onemap-wall-open", answer.counts.total);
      setText("onemap-wall-red", answer.counts.red);
      setText("onemap-wall-yellow", answer.counts.yellow);
    });
    var trend = api("/v1/stats/counts" + query({ by: "day", from: dayStart(29) })).then(function (answer) {
      var byDay = {};
      answer.rows.forEach(function (row) {
        byDay[String(row.key).slice(0, 10)] = row.events;
      });
      var days = [];
      for (var i = 29; i >= 0; i--) days.push(dayStart(i).slice(0, 10));
      var values = days.map(function (d) {
        return byDay[d] || 0;
      });
      var top = Math.max.apply(null, values.concat([1]));
      var points = values.map(function (v, k) {
        return (k * 300 / 29).toFixed(1) + "," + (66 - v / top * 60).toFixed(1);
      }).join(" ");
      document.getElementById("onemap-wall-trend").innerHTML =
        '<polyline fill="none" stroke="#4fc3f7" stroke-width="2" points="' + points + '"/>';
      setText("onemap-wall-trend-range", days[0] + " — " + days[29] + "，单日最多 " + top + " 件");
      state.wallTrend = values;
    });
    var categories = api("/v1/stats/counts" + query({ by: "category", from: dayStart(6) })).then(function (answer) {
      var rows = answer.rows.slice().sort(function (a, b) {
        return b.events - a.events;
      }).slice(0, 5);
      document.getElementById("onemap-wall-categories").innerHTML = rows.map(function (row) {
        return "<li>" + escapeHtml(categoryName(row.key)) + " <b>" + row.events + "</b> 件</li>";
      }).join("") || "<li>近 7 天无上报</li>";
    });
    var rankingOf = function (m) {
      return api("/v1/stats/ranking" + query({ month: m, level: "town" })).then(function (answer) {
        answer.month = m;
        return answer;
      });
    };
    var busy = function (answer) {
      return answer.rows.some(function (row) {
        return row.events > 0;
      });
    };
    var now = new Date();
    var lastMonth = localTime(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 15)).toISOString()).slice(0, 7);
    var ranking = rankingOf(month).then(function (answer) {
      return busy(answer) ? answer : rankingOf(lastMonth); // early in a month, last month's ranking
    }).then(function (answer) {
      setText("onemap-wall-month", answer.month);
      document.getElementById("onemap-wall-ranking").innerHTML = answer.rows.slice(0, 5).map(function (row) {
        return "<li>" + escapeHtml(row.name) + " <b>" + (row.index === null ? "—" : Number(row.index).toFixed(1)) + "</b></li>";
      }).join("") || "<li>本月暂无数据</li>";
    });
    var ticker = api("/v1/events" + query({ limit: 8, sort: "-updated_at" })).then(function (page) {
      if (state.wallTicked) return;
      document.getElementById("onemap-wall-ticker").innerHTML = page.items.map(function (event) {
        return tickerLine(event.updated_at, event.id, event.category_code, event.status);
      }).join("");
    });
    return Promise.all([today, open, trend, categories, ranking, ticker])
      .then(function () {
        state.wallReady = true;
      })
      .catch(report);
  }

  function tickerLine(at, id, category, status) {
    var when = localTime(at);
    var today = localTime(new Date().toISOString()).slice(0, 10);
    when = when.slice(0, 10) === today ? when.slice(11) : when.slice(5); // today: the time; before: the day too
    return '<li data-event="' + id + '">' + escapeHtml(when) + " #" + id + " " +
      escapeHtml(category ? categoryName(category) : "") + " · <b>" + escapeHtml(nameOf("statuses", status)) + "</b></li>";
  }

  /** A pushed change goes on top of the ticker at once. */
  function tick(change) {
    var list = document.getElementById("onemap-wall-ticker");
    if (!WALL || !list) return;
    state.wallTicked = true;
    api("/v1/events/" + change.event_id).then(function (event) {
      list.insertAdjacentHTML("afterbegin", tickerLine(change.at || event.updated_at, event.id, event.category_code, event.status));
      while (list.children.length > 12) list.removeChild(list.lastChild);
    }).catch(report);
  }

  // ---------------------------------------------------------------- legend and start

  /**
   * The legend explains what is drawn now: the classes of the grid shading chosen (open or overdue
   * events per grid with their counts; the governance index, where green is good), warning colours,
   * posts and their rings, coverage gaps, heat, forces and key places (in Chinese; codes aside).
   */
  function legendHtml() {
    var swatch = function (colour, round) {
      return '<i class="' + (round ? "round" : "") + '" style="background:' + colour + '"></i>';
    };
    var warnings = ["red", "yellow", "blue", "none"].map(function (w) {
      return swatch(config.warningColours[w], true) + escapeHtml(nameOf("warnings", w));
    }).join(" ");
    var grids;
    if (state.measure === "index") {
      grids = "<b>网格着色：社区治理指数</b>（" + escapeHtml(state.indexMonth || "") + "，越绿越好）<br>" +
        ["0–20", "20–40", "40–60", "60–80", "80–100"].map(function (label, k) {
          return swatch(INDEX_COLOURS[k]) + label;
        }).join(" ") + " " + swatch("#dddddd") + "无数据";
    } else if (state.measure === "patrol") {
      grids = "<b>网格着色：本周巡查覆盖率</b>（" + escapeHtml(state.patrolWeek || "") + "，轨迹 " +
        fmt(state.patrolCoverM || 0) + " 米内的面积占比，越深越好）<br>" +
        ["0–20%", "20–40%", "40–60%", "60–80%", "80–100%"].map(function (label, k) {
          return swatch(PATROL_COLOURS[k]) + label;
        }).join(" ") + " " + swatch("#dddddd") + "无数据";
    } else if (state.measure === "incidence") {
      var per = state.incidencePer === "10k residents" ? "件/万人" : state.incidencePer === "km²" ? "件/km²" : "";
      var breaks = state.incidenceBreaks || [];
      var bounds = [0].concat(breaks);
      grids = "<b>网格着色：社区发案率</b>（" + escapeHtml(state.indexMonth || "") + "，" + per + "，越浅越好）<br>" +
        INCIDENCE_COLOURS.map(function (colour, k) {
          var low = bounds[k], high = breaks[k];
          return swatch(colour) + (high === undefined ? "> " + fmt(low) : fmt(low) + "–" + fmt(high));
        }).join(" ") + " " + swatch("#dddddd") + "无数据";
    } else {
      var overdue = state.measure === "overdue";
      var max = Math.max(1, overdue ? state.maxOverdue || 0 : state.maxOpen || 0);
      var colours = ["#fee5d9", "#fcae91", "#fb6a4a", "#de2d26", "#a50f15"];
      var classes = [swatch("#f7f7f7") + "0"];
      var previous = 0;
      for (var i = 0; i < colours.length; i++) {
        var top = Math.min(max, Math.ceil(max * Math.pow((i + 0.5) / 4, 2)) - (i === colours.length - 1 ? 0 : 1));
        if (i === colours.length - 1) top = max;
        var low = Math.max(1, previous + 1);
        if (top >= low) classes.push(swatch(colours[i]) + (low === top ? low : low + "–" + top));
        previous = Math.max(previous, top);
      }
      grids = "<b>网格着色：" + (overdue ? "超期事件数" : "在办事件数") + "</b>（每格，件）<br>" + classes.join(" ");
    }
    var posts = Object.keys(config.postColours).map(function (level) {
      return swatch(config.postColours[level], true) + escapeHtml(config.postNames[level]);
    }).join("<br>");
    var places = Object.keys(config.placeSymbols).map(function (type) {
      var s = config.placeSymbols[type];
      return '<span class="onemap-place-inline" style="background:' + s[1] + '">' + s[0] + "</span>" + escapeHtml(nameOf("place_types", type));
    }).join(" ");
    return grids +
      "<br><b>事件预警</b>（缩小时为聚合圈，大小为件数、颜色为其中最重预警）<br>" + warnings +
      "<br><b>警务点与覆盖圈</b>（圈：该级覆盖半径）<br>" + posts +
      '<br><b>覆盖缺口</b> <i style="background:rgba(215,48,31,0.35)"></i>圈外区域' +
      ' · <b>热力</b> <i style="background:linear-gradient(90deg,#00f,#0f0,#ff0,#f00)"></i>事件密度（200 米格）' +
      "<br><b>力量</b> " + swatch("#33a02c", true) + "网格员 " + swatch("#1f78b4", true) + "巡逻 （淡色：忙碌）" +
      "<br><b>重点场所</b><br>" + places;
  }

  function fmt(value) {
    return Number(value || 0).toLocaleString("zh-CN", { maximumFractionDigits: value < 10 ? 2 : 0 });
  }

  function legend() {
    var control = L.control({ position: "bottomleft" });
    control.onAdd = function () {
      var div = L.DomUtil.create("div", "onemap-card onemap-legend");
      // Open where the screen has room for it; a click opens it on smaller screens.
      var open = window.innerHeight >= 1000 ? " open" : "";
      div.innerHTML = "<details" + open + '><summary>图例</summary><div class="onemap-legend-body">' + legendHtml() + "</div></details>";
      L.DomEvent.disableClickPropagation(div);
      return div;
    };
    control.update = function () {
      var body = control.getContainer() && control.getContainer().querySelector(".onemap-legend-body");
      if (body) body.innerHTML = legendHtml();
    };
    return control;
  }

  /** Fit ``bounds`` [w, s, e, n] into what the toolbar and the panel leave of the map. */
  function landOn(bounds) {
    var toolbar = document.getElementById("onemap-toolbar").getBoundingClientRect();
    var panel = document.getElementById(WALL ? "onemap-wall" : "onemap-panel");
    var right = panel.hidden ? 20 : panel.getBoundingClientRect().width + 30;
    state.landed = bounds;
    map.fitBounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]], {
      paddingTopLeft: [20, toolbar.bottom + 10], paddingBottomRight: [right, 30], animate: false,
    });
  }

  function start() {
    // /v1/auth/me answers staff only: a signed-in account it refuses is a citizen's.
    var me = api("/v1/auth/me").catch(function (error) {
      if (error.status === 403) return { role: "public" };
      throw error;
    });
    Promise.all([me, api("/map/names")])
      .then(function (both) {
        var me = both[0];
        state.me = me;
        state.names = both[1];
        if (me.role === "public") {
          window.location.replace("/report"); // citizens report and follow their reports there
          return null;
        }
        setText("onemap-user", (me.display_name || me.username) + " · " + nameOf("roles", me.role));
        document.getElementById("onemap-zone").textContent = "时间 " + zoneOffset();
        state.readsEvents = me.role !== "planner";
        document.getElementById("onemap-panel").hidden = !state.readsEvents;
        if (PATROL_READERS.indexOf(me.role) < 0) {
          var patrolOption = document.querySelector("#onemap-measure option[value=patrol]");
          if (patrolOption) patrolOption.remove(); // the coverage figures are the patrolling side's (403 to others)
        }
        if (WALL && state.readsEvents) {
          document.body.classList.add("onemap-wall-mode");
          document.getElementById("onemap-wall").hidden = false;
          document.getElementById("onemap-wall-link").hidden = true;
        }
        if (state.readsEvents) fillFilters();
        return api("/map/area").then(function (area) {
          state.area = area;
          if (area.name) setText("onemap-area", area.name);
          if (area.bounds) landOn(area.bounds);
          build();
          return loadMeasure();
        });
      })
      .catch(report);
  }

  function build() {
    var layers = state.layers;
    layers.regions = tileLayer("regions", {}, regionStyle);
    layers.labels = labelsLayer();
    layers.grids = tileLayer("grids", {}, gridStyle);
    var overlays = {
      "区域 regions": layers.regions,
      "区域名称 labels": layers.labels,
      "网格 grids": layers.grids,
    };
    Object.keys(config.postColours).forEach(function (level) {
      layers["posts_" + level] = tileLayer("posts", { level: level }, postStyle, "posts_" + level);
      layers["rings_" + level] = tileLayer("rings", { level: level }, ringStyle, "rings_" + level);
      layers["gaps_" + level] = gapsLayer(level);
      overlays["警务点 " + config.postNames[level]] = layers["posts_" + level];
      overlays["覆盖圈 rings " + config.postNames[level]] = layers["rings_" + level];
      overlays["覆盖缺口 gaps " + config.postNames[level]] = layers["gaps_" + level];
    });
    layers.places = placesLayer();
    var filters = filterValues();
    layers.events = tileLayer("events", Object.assign(eventParams(), { warning: filters.warning, category: filters.category }),
                              eventStyle);
    layers.heat = heatLayer();
    layers.forces = forcesLayer();
    overlays["重点场所 key places"] = layers.places;
    overlays["事件 events"] = layers.events;
    overlays["热力 heat map"] = layers.heat;
    overlays["力量 forces"] = layers.forces;
    var draft = new URLSearchParams(window.location.search).get("draft");
    if (draft) {
      var drafts = draftLayers(draft);
      var names = { draft_grids: "草稿网格 draft grids", draft_changes: "草稿变化 draft changes",
                    draft_errors: "草稿错误 draft errors" };
      Object.keys(drafts).forEach(function (name) {
        layers[name] = drafts[name];
        overlays[names[name]] = drafts[name];
        drafts[name].addTo(map);
      });
    }
    state.overlays = overlays;
    ["regions", "labels", "grids", "posts_station", "posts_central_room", "posts_village_room", "places", "events", "forces"]
      .forEach(function (name) {
        layers[name].addTo(map);
      });
    var bases = {};
    map.eachLayer(function (layer) {
      if (layer instanceof L.TileLayer && !(layer instanceof L.VectorGrid)) bases["底图 base map"] = layer;
    });
    state.control = L.control.layers(bases, overlays, { collapsed: true, position: "topright" }).addTo(map);
    state.legend = legend().addTo(map);
    if (state.readsEvents) state.timers.push(setInterval(refreshQueue, config.refreshMs));
    state.timers.push(setInterval(function () {
      if (map.hasLayer(layers.heat)) layers.heat.reload();
    }, config.refreshMs));
    state.ready = true;
    if (state.readsEvents) {
      refreshQueue();
      listen();
    }
    if (WALL && state.readsEvents) {
      refreshWall();
      state.timers.push(setInterval(refreshWall, Math.max(config.refreshMs, 30000)));
      state.timers.push(setInterval(function () {
        setText("onemap-wall-clock", localTime(new Date().toISOString(), true) + " (" + zoneOffset() + ")");
      }, 1000));
    }
  }

  /** Every overlay on at once (the screenshot of the whole one-map; also handy on a wall screen). */
  state.landOn = landOn;

  state.showAll = function () {
    Object.keys(state.overlays).forEach(function (name) {
      if (!map.hasLayer(state.overlays[name])) state.overlays[name].addTo(map);
    });
  };

  if (state.token) {
    document.getElementById("onemap-signin").hidden = true;
    start();
  } else {
    showSignIn("");
  }
})();
