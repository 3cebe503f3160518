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
  var state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    me: null,
    ready: false,
    drawn: {},
    measure: "open",
    counts: {},
    index: {},
    located: null,
    layers: {},
    overlays: {},
    timers: [],
    errors: [],
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
          if (!response.ok) throw new Error(body.detail || response.statusText);
          return body;
        },
        function () {
          throw new Error(response.statusText);
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
      if (index === undefined) return "#dddddd";
      return ramp(["#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641"], index / 100);
    }
    var values = state.counts[properties.code];
    var n = values ? values[state.measure === "overdue" ? 1 : 0] : 0;
    if (!n) return "#f7f7f7";
    var max = state.measure === "overdue" ? state.maxOverdue : state.maxOpen;
    return ramp(["#fee5d9", "#fcae91", "#fb6a4a", "#de2d26", "#a50f15"], Math.sqrt(n / Math.max(1, max)));
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
    var group = L.layerGroup();
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
            layer.bindTooltip(escapeHtml(feature.properties.name) + " · " + escapeHtml(feature.properties.type));
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
              .bindTooltip(escapeHtml(p.display_name || p.username) + " · " + escapeHtml(p.kind) + " · " + escapeHtml(p.at))
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
            style: { color: colour, weight: 0, fillColor: "#d7301f", fillOpacity: 0.35 },
            onEachFeature: function (feature, layer) {
              var p = feature.properties;
              layer.bindTooltip(escapeHtml(p.unit_name) + ": " + p.gap_km2.toFixed(2) + " km² beyond " + p.radius_m + " m");
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
    var index = measure !== "index" ? Promise.resolve() : loadIndex();
    return Promise.all([counts, index])
      .then(function () {
        if (state.layers.grids) state.layers.grids.redraw();
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
      return api("/v1/stats/ranking" + query({ month: m, level: "community" }));
    };
    return ranking(month(now)).then(function (answer) {
      var busy = answer.rows.some(function (row) {
        return row.events > 0;
      });
      return busy ? answer : ranking(month(last));
    }).then(function (answer) {
      state.index = {};
      answer.rows.forEach(function (row) {
        state.index[row.code] = row.index;
      });
    });
  }

  function gridPopup(answer) {
    var counts = state.counts[answer.grid.code] || [0, 0];
    var workers = (answer.grid.workers || []).join("、") || "—";
    return (
      '<div class="onemap-popup" data-grid="' + escapeHtml(answer.grid.code) + '">' +
      "<b>" + escapeHtml(answer.grid.name) + "</b><br>" +
      "网格 grid <code>" + escapeHtml(answer.grid.code) + "</code><br>" +
      "社区 community " + escapeHtml(answer.community.name) + " (" + escapeHtml(answer.community.code) + ")<br>" +
      "镇街 town " + escapeHtml(answer.town.name) + "<br>" +
      "网格员 workers " + escapeHtml(workers) + "<br>" +
      "民警 officer " + escapeHtml(answer.grid.officer || "—") + "<br>" +
      "在办 open " + counts[0] + " · 超期 overdue " + counts[1] +
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

  function showEvent(id, latlng) {
    return api("/v1/events/" + id)
      .then(function (event) {
        var html =
          '<div class="onemap-popup" data-event="' + event.id + '">' +
          "<b>#" + event.id + " " + escapeHtml(event.category_code) + "</b><br>" +
          "状态 state " + escapeHtml(event.status) + " · 预警 warning " +
          '<span class="onemap-warning onemap-warning-' + escapeHtml(event.warning) + '">' + escapeHtml(event.warning) + "</span><br>" +
          "期限 deadline " + escapeHtml(event.due_at || "—") + (event.overdue ? " (超期 overdue)" : "") + "<br>" +
          "网格 grid " + escapeHtml(event.grid_code || "—") + " · 派出所 station " + escapeHtml(event.station_code || "—") + "<br>" +
          "部门 department " + escapeHtml(event.department_code || "—") + "<br>" +
          "<small>" + escapeHtml(event.route_reason || "") + "</small><br>" +
          '<a href="#" class="onemap-log-link" data-event="' + event.id + '">日志 log</a>' +
          "</div>";
        L.popup().setLatLng(latlng || [event.lat, event.lon]).setContent(html).openOn(map);
      })
      .catch(report);
  }

  function showLog(id) {
    api("/v1/events/" + id + "/log")
      .then(function (log) {
        var section = document.getElementById("onemap-log");
        var list = section.querySelector("ol");
        list.innerHTML = log.entries
          .map(function (entry) {
            return "<li>" + escapeHtml(entry.at) + " " + escapeHtml(entry.actor) + " (" + escapeHtml(entry.role) + "): " +
              escapeHtml(entry.from_status || "—") + " → " + escapeHtml(entry.to_status) + " " + escapeHtml(entry.note) + "</li>";
          })
          .join("");
        section.hidden = false;
      })
      .catch(report);
  }

  // Leaflet stops clicks inside a popup from bubbling, so the log links are wired as each popup opens.
  map.on("popupopen", function (e) {
    e.popup.getElement().querySelectorAll(".onemap-log-link").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        showLog(link.getAttribute("data-event"));
      });
    });
  });
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

  function refreshNewest() {
    if (!state.ready) return;
    api("/v1/events" + query({ limit: 15, sort: "-reported_at" }))
      .then(function (page) {
        var list = document.getElementById("onemap-newest");
        list.innerHTML = page.items
          .map(function (event) {
            return '<li data-event="' + event.id + '" data-lon="' + event.lon + '" data-lat="' + event.lat + '">' +
              '<span class="onemap-warning onemap-warning-' + escapeHtml(event.warning) + '">●</span> #' + event.id + " " +
              escapeHtml(event.category_code) + " · " + escapeHtml(event.status) + " · " + escapeHtml(event.grid_code || "—") +
              "<br><small>" + escapeHtml(event.reported_at) + "</small></li>";
          })
          .join("");
        setText("onemap-panel-updated", new Date().toLocaleTimeString());
        state.newest = page.items.length;
      })
      .catch(report);
  }

  document.getElementById("onemap-newest").addEventListener("click", function (event) {
    var item = event.target.closest("li");
    if (!item) return;
    var latlng = [Number(item.getAttribute("data-lat")), Number(item.getAttribute("data-lon"))];
    map.flyTo(latlng, Math.max(map.getZoom(), 16), { duration: 0.6 });
    showEvent(item.getAttribute("data-event"), latlng);
  });

  function refilterEvents() {
    var params = eventParams();
    if (state.layers.events) state.layers.events.setUrl("/tiles/events/{z}/{x}/{y}.mvt" + query(params));
    if (state.layers.heat) state.layers.heat.reload();
  }

  document.getElementById("onemap-measure").addEventListener("change", loadMeasure);
  document.getElementById("onemap-window").addEventListener("change", refilterEvents);
  document.getElementById("onemap-open-only").addEventListener("change", refilterEvents);

  // ---------------------------------------------------------------- legend and start

  function legend() {
    var control = L.control({ position: "bottomleft" });
    control.onAdd = function () {
      var div = L.DomUtil.create("div", "onemap-card onemap-legend");
      var warnings = Object.keys(config.warningColours)
        .map(function (w) {
          return '<i style="background:' + config.warningColours[w] + '"></i>' + w;
        })
        .join(" ");
      var posts = Object.keys(config.postColours)
        .map(function (level) {
          return '<i class="round" style="background:' + config.postColours[level] + '"></i>' + escapeHtml(config.postNames[level]);
        })
        .join("<br>");
      var places = Object.keys(config.placeSymbols)
        .map(function (type) {
          var s = config.placeSymbols[type];
          return '<span class="onemap-place-inline" style="background:' + s[1] + '">' + s[0] + "</span>" + escapeHtml(type);
        })
        .join(" ");
      div.innerHTML =
        "<b>预警 warnings</b><br>" + warnings + "<br><b>警务 police</b><br>" + posts +
        '<br><b>网格 grids</b> <i style="background:#fee5d9"></i>→<i style="background:#a50f15"></i> more' +
        "<br><b>重点场所 key places</b><br>" + places;
      return div;
    };
    return control;
  }

  function start() {
    api("/v1/auth/me")
      .then(function (me) {
        state.me = me;
        setText("onemap-user", me.username + " · " + me.role);
        return api("/tiles/grids.json");
      })
      .then(function (tilejson) {
        var b = tilejson.bounds;
        map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
        build();
        return loadMeasure();
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
    layers.events = tileLayer("events", eventParams(), eventStyle);
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
    state.timers.push(setInterval(refreshNewest, config.refreshMs));
    state.timers.push(setInterval(function () {
      if (map.hasLayer(layers.heat)) layers.heat.reload();
    }, config.refreshMs));
    state.ready = true;
    refreshNewest();
  }

  /** Every overlay on at once (the screenshot of the whole one-map; also handy on a wall screen). */
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
