// The chat page: one subscription to two channels, the room's lines and its presence (who has
// the page open), over one held poll; a POST per line sent, and one every 20 s to say "here".
import { subscribe } from 'longpoll-kit/client';

const ROOM = 'chat:lobby';
const PRESENCE = 'presence:lobby';
const ROOM_URL = `/channels/${ROOM}`;
const PRESENCE_URL = `/channels/${PRESENCE}`;
// One poll for both: `?channels=` lists them (each name percent-encoded, joined by ','). Its
// cursor is composite and opaque, and every message names its `channel`.
const POLL_URL = `/channels?channels=${[ROOM, PRESENCE].map(encodeURIComponent).join(',')}`;
// A tab says it is here this often, and counts as here for this long after it last did.
const HERE_EVERY = 20_000;
const HERE_FOR = 2.5 * HERE_EVERY;

const list = document.querySelector('#messages');
const status = document.querySelector('#status');
const form = document.querySelector('#compose');
const nameInput = document.querySelector('#name');
const textInput = document.querySelector('#text');
const sendButton = document.querySelector('#send');
const here = document.querySelector('#presence');

nameInput.value = localStorage.getItem('chat-name') ?? `guest-${Math.floor(Math.random() * 9000) + 1000}`;
nameInput.addEventListener('change', () => {
  localStorage.setItem('chat-name', nameInput.value);
  sayHere(); // the old name is gone once HERE_FOR has passed
});

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

function append(item) {
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
  list.append(item);
  if (atBottom) item.scrollIntoView({ block: 'end' });
}

function note(text) {
  const item = document.createElement('li');
  item.className = 'note';
  item.textContent = text;
  append(item);
}

// Anyone can publish any JSON to the channel: show only strings, and only as text.
function show(message) {
  const data = message.data ?? {};
  const name = typeof data.name === 'string' ? data.name : 'someone';
  const text = typeof data.text === 'string' ? data.text : JSON.stringify(data);
  const item = document.createElement('li');
  if (name === nameInput.value) item.classList.add('mine');
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.textContent = `${name} · ${new Date(message.publishedAt).toLocaleTimeString()}`;
  item.append(meta, text);
  append(item);
}

// The first subscription has no cursor: its first answer brings the room's retained history,
// then each new line. A later one resumes from where the last one stopped.
let subscription;
function connect(cursor) {
  subscription = subscribe(POLL_URL, { cursor });
  subscription.on('open', () => setStatus('live', 'live'));
  subscription.on('message', (message) => {
    setStatus('live', 'live');
    if (message.channel === PRESENCE) seen(message);
    else show(message);
  });
  subscription.on('reset', () => note('The server lost its history; showing what it has now.'));
  subscription.on('error', (error) => {
    if (error.fatal) setStatus('stopped', `stopped: ${error.message}`);
    else setStatus('retrying', `reconnecting in ${Math.ceil(error.retryIn / 1000)} s`);
  });
}
connect(undefined);

// Leaving the page frees the held poll at once. The browser may keep the page in its
// back/forward cache and show it again (pageshow with `persisted`): then subscribe again from
// the cursor the closed subscription reached, so the lines sent meanwhile appear.
window.addEventListener('pagehide', () => {
  subscription.close();
  clearTimeout(hereTimer);
});
window.addEventListener('pageshow', (event) => {
  if (event.persisted && subscription.closed) {
    setStatus('connecting', 'connecting');
    connect(subscription.cursor);
    sayHere();
  }
});

// Presence: the newest "here" of each name, by the server's clock (`publishedAt`). The room's
// history brings the last hour of them, so a new tab sees at once who was here in the last
// HERE_FOR. `skew` is the server's clock minus this one, learnt from our own posts' answers.
const lastSeen = new Map();
let skew = 0;
let hereTimer;

function seen(message) {
  const name = message.data?.name;
  if (typeof name !== 'string' || name === '') return;
  const at = Date.parse(message.publishedAt);
  if (at > (lastSeen.get(name) ?? -Infinity)) lastSeen.set(name, at);
  showHere();
}

function showHere() {
  const now = Date.now() + skew;
  for (const [name, at] of lastSeen) if (now - at > HERE_FOR) lastSeen.delete(name);
  here.textContent = lastSeen.size === 0 ? '' : `here: ${[...lastSeen.keys()].sort().join(', ')}`;
}
setInterval(showHere, 5000);

/** Says "here" now and every HERE_EVERY; a refusal (429: this address has many tabs) waits for the next. */
function sayHere() {
  clearTimeout(hereTimer);
  hereTimer = setTimeout(sayHere, HERE_EVERY);
  void postHere();
}

async function postHere() {
  try {
    const sentAt = Date.now();
    const response = await fetch(PRESENCE_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: nameInput.value }),
    });
    if (response.ok) skew = Date.parse((await response.json()).publishedAt) - (sentAt + Date.now()) / 2;
  } catch {
    // Offline or stopping: the next one tries again.
  }
}
sayHere();

async function send() {
  const text = textInput.value.trim();
  if (!text) return;
  sendButton.disabled = true;
  try {
    const response = await fetch(ROOM_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: nameInput.value, text }),
    });
    if (!response.ok) throw new Error((await response.json()).detail ?? `HTTP ${response.status}`);
    textInput.value = '';
  } catch (error) {
    note(`Not sent: ${error.message}`);
  } finally {
    sendButton.disabled = false;
    textInput.focus();
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  void send();
});
