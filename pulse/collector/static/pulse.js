/*! pulse.js: first-party behavioral tracker for pulse (docs/tracker.md). No dependencies. */
(function (w, d) {
  'use strict';
  var old = w.pulse;
  if (old && old.loaded) return;

  var script = d.currentScript || d.querySelector('script[src*="pulse.js"]');
  var P = 'pulse:', LS = null, C = w.crypto, H = w.history, L = w.location;
  try { LS = w.localStorage; } catch (e) { /* blocked storage: memory only */ }
  // event types: generated from pulse/core/contract.py by `make contract-copies`: edit the declaration, not this copy
  var TYPES = 'page_view page_ping scroll click search product_view add_to_cart remove_from_cart checkout purchase identify'.split(' ');
  // end of event types
  var FIELDS = 'product_id category price quantity order_id revenue value cart_value search_query'.split(' ');
  var KA_MAX = 64000; // Chromium allows 64 KiB of in-flight keepalive bodies per page
  var cfg = {
    endpoint: '/collect', heartbeatSeconds: 10, minimumVisitSeconds: 10, clickSelectors: [],
    requireConsent: true, queueMax: 1000, batchSize: 50, flushDelayMs: 1000, retryMaxSeconds: 60,
    sessionMinutes: 30, spa: true
  };
  // data-<attribute> on the script tag -> config key
  var ATTRS = {
    endpoint: 'endpoint', heartbeat: 'heartbeatSeconds', 'min-visit': 'minimumVisitSeconds',
    click: 'clickSelectors', 'require-consent': 'requireConsent', 'queue-max': 'queueMax',
    'batch-size': 'batchSize', 'flush-delay': 'flushDelayMs', 'retry-max': 'retryMaxSeconds',
    session: 'sessionMinutes', spa: 'spa'
  };

  var started = 0, before = [];       // API calls made before init (data-auto="false")
  var consent = null, denied = 0;     // consent: {analytics, personalization} once granted (or implied)
  var held = [];                      // events made before consent: memory only, no ids of the visitor
  var memQ = [], storeOk = 1;         // the queue when storage is unusable
  var mine = {}, inflight = {}, kaInflight = {}, kaBytes = 0;
  var aid = null, sid = null, uid = null, pvid = null, href = null;
  var timer = 0, timerAt = 0, backoff = 0, busy = 0, attempt = 0, waiters = [], lastT = 0;
  var pingT = 0, active = 0, maxY = 0, fired = {};

  function now() { return Date.now(); }

  function uuid() {
    if (C && C.randomUUID) return C.randomUUID();
    var b = new Uint8Array(16), h = '', i;
    if (C && C.getRandomValues) C.getRandomValues(b);
    else for (i = 0; i < 16; i++) b[i] = Math.random() * 256;
    b[6] = b[6] & 15 | 64; b[8] = b[8] & 63 | 128;
    for (i = 0; i < 16; i++) h += (i == 4 || i == 6 || i == 8 || i == 10 ? '-' : '') + (b[i] + 256).toString(16).slice(1);
    return h;
  }

  // ---------------------------------------------------------------- storage (only after consent)
  function granted() { return !!(consent && consent.analytics) && !denied; }
  function get(k) { try { return JSON.parse(LS.getItem(P + k)); } catch (e) { return null; } }
  function put(k, v) {
    if (!granted() || !LS) return;
    try { v == null ? LS.removeItem(P + k) : LS.setItem(P + k, JSON.stringify(v)); } catch (e) { /* full */ }
  }
  function clearStorage() {
    try {
      for (var i = LS.length - 1; i >= 0; i--) {
        var k = LS.key(i);
        if (k && k.indexOf(P) === 0) LS.removeItem(k);
      }
    } catch (e) { /* nothing stored */ }
  }

  // The queue of unacknowledged events. localStorage is the truth (shared with other tabs and the next
  // page), so every change is a read-modify-write; the oldest events go beyond queueMax.
  function qget() {
    if (granted() && storeOk && LS) {
      var a = get('q');
      return Array.isArray(a) ? a : [];
    }
    return memQ;
  }
  function qset(a) {
    if (a.length > cfg.queueMax) a = a.slice(a.length - cfg.queueMax);
    memQ = a;
    if (granted() && storeOk && LS) {
      try { a.length ? LS.setItem(P + 'q', JSON.stringify(a)) : LS.removeItem(P + 'q'); } catch (e) { storeOk = 0; }
    }
  }
  function adopt() { qget().forEach(function (e) { mine[e.event_id] = 1; }); }
  function drop(ids) {
    qset(qget().filter(function (e) { return !ids[e.event_id]; }));
    for (var id in ids) delete mine[id];
  }

  // ---------------------------------------------------------------- ids and sessions
  function identity() {
    aid = get('aid') || aid || uuid();
    put('aid', aid);
    uid = uid || get('uid');
    put('uid', uid);
  }
  function touch() {
    var t = now(), s = get('sess') || { id: sid, last: lastT };
    sid = s.id && t - s.last < cfg.sessionMinutes * 60000 ? s.id : uuid();
    lastT = t;
    put('sess', { id: sid, last: t });
  }
  function stamp(e) {
    touch();
    e.anonymous_id = aid;
    e.session_id = sid;
    e.consent_analytics = true;
    e.consent_personalization = !!consent.personalization;
    return e;
  }

  // ---------------------------------------------------------------- events
  function fields(o, extra) {
    var e = extra || {}, p = {}, n = 0;
    for (var k in o || {}) {
      var v = o[k];
      if (v === undefined) continue;
      if (FIELDS.indexOf(k) >= 0) e[k] = v;
      else if (k == 'properties' && v && typeof v == 'object') { for (var j in v) { p[j] = v[j]; n++; } }
      else { p[k] = v; n++; }
    }
    if (n) e.properties = p;
    return e;
  }

  function emit(type, f) {
    if (!started || denied) return;
    var e = { event_id: uuid(), event_type: type, event_time: new Date().toISOString(), page_view_id: pvid };
    if (uid) e.user_id = uid; // as it is when the event happens (held events too)
    for (var k in f) if (f[k] != null) e[k] = f[k];
    if (!granted()) {
      held.push(e);
      if (held.length > cfg.queueMax) held.shift();
    } else {
      push([stamp(e)]);
    }
    return e.event_id;
  }

  function push(es) {
    if (!es.length) return;
    var a = qget();
    es.forEach(function (e) { a.push(e); mine[e.event_id] = 1; });
    qset(a);
    schedule(a.length >= cfg.batchSize ? 0 : cfg.flushDelayMs);
  }

  // ---------------------------------------------------------------- sending
  function size(s) { return w.TextEncoder ? new TextEncoder().encode(s).length : s.length * 3; }

  function schedule(ms) {
    var at = now() + ms;
    if (busy || backoff || !granted() || (timer && timerAt <= at)) return;
    clearTimeout(timer);
    timerAt = at;
    timer = setTimeout(send, ms);
  }
  // 2xx: accepted, and the rejected ones are dead-lettered by the server; other 4xx: never retried
  function final(r) {
    var st = r ? r.status : 0;
    return r && (r.ok || (st >= 400 && st < 500 && st != 408 && st != 429));
  }

  function settle(ok) {
    var ws = waiters;
    waiters = [];
    ws.forEach(function (f) { f(ok); });
  }

  function pick(unloading) {
    return qget().filter(function (e) {
      return mine[e.event_id] && !kaInflight[e.event_id] && (unloading || !inflight[e.event_id]);
    });
  }

  function retryAfter(r) {
    var v = r && r.headers.get('Retry-After');
    if (!v) return 0;
    var s = /^\d+$/.test(v) ? +v * 1000 : Date.parse(v) - now();
    return s > 0 ? Math.min(s, 600000) : 0;
  }

  // Read the (small) answer so that the request completes; its counts do not matter to the queue.
  function drain(r) { if (r) r.text().then(null, function () {}); }

  function send() {
    clearTimeout(timer);
    timer = backoff = 0;
    if (busy) return;
    var a = granted() ? pick(0) : [], batch = [], ids = {}, bytes = 0;
    for (var i = 0; i < a.length && batch.length < cfg.batchSize; i++) {
      var s = JSON.stringify(a[i]);
      if (batch.length && bytes + s.length > 300000) break; // chars: under the 1 MB body limit in UTF-8
      batch.push(s);
      bytes += s.length;
      ids[a[i].event_id] = inflight[a[i].event_id] = 1;
    }
    if (!batch.length) return settle(!held.length);
    busy = 1;
    var done = function (r) {
      drain(r);
      busy = 0;
      for (var id in ids) delete inflight[id];
      if (final(r)) {
        drop(ids);
        attempt = 0;
        if (pick(0).length) send();
        else settle(!held.length);
      } else {
        attempt++;
        var ms = retryAfter(r) ||
          Math.min(cfg.retryMaxSeconds * 1000, 1000 * Math.pow(2, attempt - 1)) * (0.5 + Math.random() / 2);
        if (granted()) { backoff = 1; timer = setTimeout(send, ms); }
        settle(false);
      }
    };
    fetch(cfg.endpoint, { method: 'POST', body: '{"events":[' + batch.join(',') + ']}', credentials: 'same-origin' })
      .then(done, function () { done(null); });
  }

  // Leaving or hiding the page: keepalive requests (they outlive the page), never more than KA_MAX bytes
  // in flight; what does not fit stays queued for the next page load.
  function flushKeepalive(unloading) {
    if (!granted() || !w.fetch) return;
    var a = pick(unloading);
    while (a.length) {
      var batch = [], ids = {}, bytes = 24;
      while (a.length) {
        var s = JSON.stringify(a[0]), n = size(s) + 1;
        if (kaBytes + bytes + n > KA_MAX) break;
        batch.push(s);
        bytes += n;
        ids[a.shift().event_id] = 1;
      }
      if (!batch.length) return;
      ka(batch, ids, bytes);
    }
  }
  function ka(batch, ids, bytes) {
    for (var id in ids) kaInflight[id] = 1;
    kaBytes += bytes;
    var end = function (r) {
      drain(r);
      kaBytes -= bytes;
      for (var id in ids) delete kaInflight[id];
      if (final(r)) drop(ids);
      else schedule(cfg.flushDelayMs);
    };
    try {
      fetch(cfg.endpoint, {
        method: 'POST', body: '{"events":[' + batch.join(',') + ']}', keepalive: true, credentials: 'same-origin'
      }).then(end, function () { end(null); });
    } catch (e) { end(null); }
  }

  // ---------------------------------------------------------------- page views, pings, scroll, clicks
  function dims() {
    var de = d.documentElement, b = d.body;
    var y = Math.max(0, Math.round(w.pageYOffset || de.scrollTop || 0));
    if (y > maxY) maxY = y;
    return { dh: Math.max(de.scrollHeight, b ? b.scrollHeight : 0), vh: w.innerHeight || de.clientHeight };
  }
  function pct(y, m) { return m.dh > 0 ? Math.min(100, Math.round((y + m.vh) / m.dh * 100)) : 100; }
  function depth(m, p) {
    return { scroll_depth_pct: p, scroll_depth_px: maxY, doc_height_px: m.dh, viewport_height_px: m.vh };
  }

  function onScroll() {
    if (!pvid) return;
    var m = dims();
    if (m.dh <= m.vh) return; // nothing to scroll: no scroll events at all
    var p = pct(maxY, m), p0 = pct(0, m);
    [25, 50, 75, 100].forEach(function (t) {
      if (fired[t] || p < t) return;
      fired[t] = 1;
      var e = depth(m, t);
      if (t <= p0) e.properties = { visible_at_load: true };
      emit('scroll', e);
    });
  }

  function tick() {
    if (d.visibilityState == 'visible' && active) {
      var m = dims();
      emit('page_ping', depth(m, pct(maxY, m)));
    }
    active = 0;
    pingT = setTimeout(tick, cfg.heartbeatSeconds * 1000);
  }

  function pageView(ref) {
    href = L.href;
    pvid = uuid();
    maxY = 0;
    fired = {};
    active = 0;
    var q = new URLSearchParams(L.search), f = { page_url: href, page_title: d.title, referrer: ref || undefined }, p = {}, n = 0;
    ['source', 'medium', 'campaign', 'term', 'content'].forEach(function (k, i) {
      var v = q.get('utm_' + k);
      if (!v) return;
      if (i < 3) f['utm_' + k] = v;
      else { p['utm_' + k] = v; n++; }
    });
    if (n) f.properties = p;
    emit('page_view', f);
    clearTimeout(pingT);
    pingT = setTimeout(tick, cfg.minimumVisitSeconds * 1000);
    if (d.readyState == 'complete') setTimeout(onScroll, 0);
    else w.addEventListener('load', onScroll);
  }

  // A new URL is a new page view; a jump to an anchor of the page (#section) is not, a hash route (#/x, #!x) is.
  function route() {
    var bare = function (u) { return u.replace(/#(?![!/]).*$/, ''); };
    if (bare(L.href) != bare(href)) pageView(href);
  }

  function describe(el) {
    var name = el.getAttribute('data-pulse-name');
    if (name) return name.slice(0, 100);
    var s = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '');
    var c = typeof el.className == 'string' ? el.className.trim().split(/\s+/).slice(0, 2) : [];
    return (c[0] ? s + '.' + c.join('.') : s).slice(0, 100);
  }

  function onClick(ev) {
    active = 1;
    var sel = [].concat(cfg.clickSelectors).join(',');
    var t = ev.target;
    if (!sel || !t) return;
    if (t.nodeType != 1) t = t.parentElement;
    try {
      var el = t && t.closest(sel);
      // Only a description of the element: never its value or text.
      if (el) emit('click', { element: describe(el) });
    } catch (e) { /* invalid selector */ }
  }

  function listen() {
    var on = function (t, ev, f) { t.addEventListener(ev, f, { capture: true, passive: true }); };
    var act = function () { active = 1; };
    ['mousemove', 'keydown', 'touchstart'].forEach(function (ev) { on(w, ev, act); });
    on(w, 'scroll', function () { active = 1; onScroll(); });
    on(d, 'click', onClick);
    on(d, 'visibilitychange', function () {
      if (d.visibilityState == 'hidden') { active = 0; flushKeepalive(0); }
    });
    // A navigation starts: send now, so that the answer may still come back to this page (and the next page
    // does not send the same events again); pagehide then sends what is left. The Navigation API where there
    // is one: a beforeunload listener can keep a page out of the back/forward cache in some browsers.
    var nav = w.navigation;
    on(nav && nav.addEventListener ? nav : w, nav ? 'navigate' : 'beforeunload', function () { flushKeepalive(0); });
    on(w, 'pagehide', function () { flushKeepalive(1); });
    on(w, 'pageshow', function (e) {
      if (e.persisted) { adopt(); pageView(d.referrer); schedule(0); } // back from the bfcache
    });
    on(w, 'online', function () { if (!busy) send(); });
    // a decision taken in another tab of the site holds here too
    on(w, 'storage', function (e) {
      if (e.key != null && e.key != P + 'consent') return;
      var c = get('consent');
      if (granted() && (c ? !c.analytics : cfg.requireConsent)) withdraw(1);
      else if (!granted() && c && c.analytics) setConsent(c);
    });
    if (cfg.spa && H && H.pushState) {
      ['pushState', 'replaceState'].forEach(function (m) {
        var o = H[m];
        H[m] = function () { var r = o.apply(this, arguments); route(); return r; };
      });
      on(w, 'popstate', route);
    }
  }

  // ---------------------------------------------------------------- consent
  function withdraw(elsewhere) {
    held = []; memQ = []; mine = {};
    consent = null; denied = 1;
    aid = sid = uid = null;
    clearTimeout(timer);
    timer = 0;
    clearStorage();
    // Opting out must survive a reload when tracking needs no consent; otherwise denial stays in memory.
    if (!cfg.requireConsent) try { LS.setItem(P + 'consent', '{"analytics":false}'); } catch (e) { /* none */ }
    settle(false);
    if (!elsewhere) try {
      fetch(cfg.endpoint.replace(/\/+$/, '') + '/forget', { method: 'POST', keepalive: true, credentials: 'same-origin' })
        .catch(function () {});
    } catch (e) { /* offline */ }
  }

  function setConsent(c) {
    if (c === true) c = { analytics: true, personalization: true };
    if (!c || !c.analytics) return withdraw();
    var was = granted(), prev = consent && consent.personalization;
    consent = { analytics: true, personalization: !!c.personalization };
    denied = 0;
    put('consent', consent);
    if (!was) {
      identity();
      adopt();
      var h = held;
      held = [];
      push(h.map(stamp));
      clearTimeout(timer);
      timer = backoff = 0;
      schedule(0);
    } else if (prev !== consent.personalization) {
      emit('custom.consent', {});
    }
  }

  // ---------------------------------------------------------------- init and the API
  function init(o) {
    if (started) return false;
    var s = script;
    if (s) for (var a in ATTRS) {
      var v = s.getAttribute('data-' + a);
      if (v != null) cfg[ATTRS[a]] = v == 'false' ? false : v == 'true' ? true : /^\d+(\.\d+)?$/.test(v) ? +v : v;
    }
    for (var k in o || {}) cfg[k] = o[k];
    started = 1;
    var c = LS && get('consent');
    if (c && c.analytics) consent = c;
    else if (c) denied = 1;
    else if (!cfg.requireConsent) consent = { analytics: true, personalization: false };
    if (granted()) { identity(); adopt(); }
    var left = granted() && pick(0).length; // unacknowledged events of earlier pages: send them at once
    listen();
    pageView(d.referrer);
    if (left) schedule(0);
    before.forEach(function (x) { api[x[0]].apply(api, x[1]); });
    before = [];
    return true;
  }

  function later(name, f) {
    return function () {
      if (!started) { before.push([name, [].slice.call(arguments)]); return; }
      return f.apply(null, arguments);
    };
  }

  function track(type, o) {
    type = String(type);
    if (TYPES.indexOf(type) < 0 && type.indexOf('custom.') !== 0) type = 'custom.' + type;
    return emit(type, fields(o));
  }

  var api = function (m) { return api[m].apply(api, [].slice.call(arguments, 1)); };
  var methods = {
    track: track,
    pageView: function () { pageView(href); },
    search: function (q, o) { return emit('search', fields(o, { search_query: String(q) })); },
    productView: function (o) { return emit('product_view', fields(o)); },
    addToCart: function (o) { return emit('add_to_cart', fields(o)); },
    removeFromCart: function (o) { return emit('remove_from_cart', fields(o)); },
    checkout: function (o) { return emit('checkout', fields(o)); },
    purchase: function (o) { return emit('purchase', fields(o)); },
    identify: function (id, o) {
      if (id == null || id === '') return methods.reset();
      uid = String(id);
      put('uid', uid);
      return emit('identify', fields(o));
    },
    reset: function () { uid = sid = null; put('uid', null); put('sess', null); },
    consent: setConsent,
    flush: function () { return new Promise(function (r) { waiters.push(r); send(); }); }
  };
  for (var m in methods) api[m] = later(m, methods[m]);
  api.init = init;
  api.loaded = 1;
  api.status = function () {
    var pending = granted() ? qget().filter(function (e) { return mine[e.event_id]; }).length : 0;
    return {
      consent: consent && !denied ? { analytics: true, personalization: consent.personalization } : denied ? false : null,
      pending: pending + held.length, held: held.length,
      anonymous_id: aid, session_id: sid, user_id: uid, page_view_id: pvid
    };
  };

  var q = (old && old.q) || [];
  w.pulse = api;
  var initCall = q.filter(function (x) { return x[0] == 'init'; })[0];
  if (initCall) init(initCall[1]);
  else if (!script || script.getAttribute('data-auto') != 'false') init();
  q.forEach(function (x) { if (x[0] != 'init') api.apply(null, x); });
})(window, document);
