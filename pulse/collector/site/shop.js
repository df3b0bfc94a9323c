// The demo shop's own code: a catalog, a cart kept in this browser, the consent banner and the calls to the
// pulse tracker (window.pulse, loaded by the one <script src="/pulse.js"> line of each page).
window.pulse = window.pulse || function () { (pulse.q = pulse.q || []).push(arguments); };

var CATALOG = [
  { id: 'p-101', name: 'Trail runner', category: 'shoes', price: 89.9, color: '#e4572e' },
  { id: 'p-102', name: 'City sneaker', category: 'shoes', price: 64.5, color: '#29335c' },
  { id: 'p-103', name: 'Hiking boot', category: 'shoes', price: 129.0, color: '#8d6a4f' },
  { id: 'p-201', name: 'Canvas tote', category: 'bags', price: 24.0, color: '#f3a712' },
  { id: 'p-202', name: 'Day pack', category: 'bags', price: 59.0, color: '#669bbc' },
  { id: 'p-203', name: 'Weekender', category: 'bags', price: 99.0, color: '#6b4e71' },
  { id: 'p-301', name: 'Rain jacket', category: 'jackets', price: 119.0, color: '#2a9d8f' },
  { id: 'p-302', name: 'Fleece', category: 'jackets', price: 49.9, color: '#e9c46a' },
  { id: 'p-303', name: 'Down parka', category: 'jackets', price: 189.0, color: '#264653' }
];
var CATEGORIES = { shoes: 'Shoes', bags: 'Bags', jackets: 'Jackets' };
var ACCOUNTS = { 'u-1001': 'Ada', 'u-1002': 'Grace', 'u-1003': 'Linus' };

function $(sel) { return document.querySelector(sel); }
function param(name) { return new URLSearchParams(location.search).get(name); }
function product(id) { return CATALOG.filter(function (p) { return p.id === id; })[0]; }
function money(n) { return '€' + n.toFixed(2); }
function esc(s) {
  return String(s).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; });
}

// ------------------------------------------------------------------ cart (the shop's, not the tracker's)
function cart() {
  try { return JSON.parse(localStorage.getItem('shop:cart')) || []; } catch (e) { return []; }
}
function saveCart(items) {
  localStorage.setItem('shop:cart', JSON.stringify(items));
  renderCartCount();
}
function cartValue(items) {
  return Math.round(items.reduce(function (s, i) { return s + i.price * i.quantity; }, 0) * 100) / 100;
}
function cartQuantity(items) { return items.reduce(function (s, i) { return s + i.quantity; }, 0); }
function addToCart(p, quantity) {
  var items = cart(), line = items.filter(function (i) { return i.id === p.id; })[0];
  if (line) line.quantity += quantity;
  else items.push({ id: p.id, name: p.name, category: p.category, price: p.price, quantity: quantity });
  saveCart(items);
  pulse('addToCart', {
    product_id: p.id, category: p.category, price: p.price, quantity: quantity,
    value: Math.round(p.price * quantity * 100) / 100, cart_value: cartValue(items)
  });
}
function removeFromCart(id) {
  var items = cart(), line = items.filter(function (i) { return i.id === id; })[0];
  if (!line) return;
  items = items.filter(function (i) { return i.id !== id; });
  saveCart(items);
  pulse('removeFromCart', {
    product_id: line.id, category: line.category, price: line.price, quantity: line.quantity,
    value: Math.round(line.price * line.quantity * 100) / 100, cart_value: cartValue(items)
  });
}
function renderCartCount() {
  var el = $('#cart-count');
  if (el) el.textContent = cartQuantity(cart());
}

// ------------------------------------------------------------------ page parts
function card(p) {
  return '<a class="card" id="product-' + p.id + '" href="/product.html?id=' + p.id + '">' +
    icon(p, '') + '<strong>' + esc(p.name) + '</strong>' +
    '<span class="price">' + money(p.price) + '</span></a>';
}
function icon(p, size) {
  var initials = p.name.split(' ').map(function (w) { return w[0]; }).join('');
  return '<span class="icon ' + size + '" style="background:' + p.color + '">' + initials + '</span>';
}
function grid(products) {
  return '<div class="grid">' + products.map(card).join('') + '</div>';
}

function header() {
  var user = sessionStorage.getItem('shop:user');
  var el = document.createElement('header');
  el.innerHTML =
    '<a class="logo" href="/">pulse shop</a>' +
    '<nav>' + Object.keys(CATEGORIES).map(function (c) {
      return '<a id="nav-' + c + '" href="/category.html?c=' + c + '">' + CATEGORIES[c] + '</a>';
    }).join('') + '</nav>' +
    '<form id="search" action="/search.html" role="search">' +
    '<input id="search-query" name="q" type="search" placeholder="Search products" aria-label="Search">' +
    '<button type="submit">Search</button></form>' +
    '<form id="login">' + (user
      ? '<span id="user">Signed in as ' + esc(ACCOUNTS[user] || user) + '</span> <button id="logout" type="button">Sign out</button>'
      : '<select id="account" aria-label="Account">' + Object.keys(ACCOUNTS).map(function (id) {
        return '<option value="' + id + '">' + ACCOUNTS[id] + '</option>';
      }).join('') + '</select> <button id="signin" type="submit">Sign in</button>') +
    '</form>' +
    '<a id="cart-link" href="/cart.html">Cart (<span id="cart-count">0</span>)</a>';
  document.body.insertBefore(el, document.body.firstChild);
  renderCartCount();
  $('#login').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var id = $('#account').value; // a login id from a list: nothing typed is sent
    sessionStorage.setItem('shop:user', id);
    pulse('identify', id);
    location.reload();
  });
  var out = $('#logout');
  if (out) out.addEventListener('click', function () {
    sessionStorage.removeItem('shop:user');
    pulse('reset');
    location.reload();
  });
}

// The banner shows until the visitor decides. The tracker stores nothing before a grant, so the shop keeps a
// refusal for this tab only (sessionStorage: the shop's own, strictly necessary preference).
function consentBanner(force) {
  var old = $('#consent');
  if (old) old.remove();
  var el = document.createElement('div');
  el.id = 'consent';
  el.setAttribute('role', 'dialog');
  el.innerHTML = '<p>We measure how this shop is used (analytics) and, if you agree, tailor what you see ' +
    '(personalization). Nothing is stored or sent with an id until you choose.</p>' +
    '<button id="consent-accept">Accept all</button> <button id="consent-analytics">Analytics only</button> ' +
    '<button id="consent-deny">Decline</button>';
  function decide(choice) {
    pulse('consent', choice);
    if (choice) sessionStorage.removeItem('shop:consent');
    else sessionStorage.setItem('shop:consent', 'declined');
    el.remove();
  }
  el.querySelector('#consent-accept').onclick = function () { decide({ analytics: true, personalization: true }); };
  el.querySelector('#consent-analytics').onclick = function () { decide({ analytics: true, personalization: false }); };
  el.querySelector('#consent-deny').onclick = function () { decide(false); };
  function show() {
    var s = pulse.status ? pulse.status() : { consent: null };
    if (force || (s.consent === null && !sessionStorage.getItem('shop:consent'))) document.body.appendChild(el);
  }
  if (window.pulse.status) show();
  else window.addEventListener('load', show);
}

function footer() {
  var el = document.createElement('footer');
  el.innerHTML = '<a href="/">Home</a> · <a href="/cart.html">Cart</a> · ' +
    '<a id="privacy" href="#privacy">Privacy settings</a>';
  document.body.appendChild(el);
  $('#privacy').onclick = function (ev) { ev.preventDefault(); consentBanner(true); };
}

function shop(render) {
  header();
  render($('main'));
  footer();
  consentBanner(false);
}
