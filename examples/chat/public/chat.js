// The chat page: one subscription to the room's channel, and a POST per message sent.
import { subscribe } from 'longpoll-kit/client';

const CHANNEL_URL = '/channels/chat:lobby';

const list = document.querySelector('#messages');
const status = document.querySelector('#status');
const form = document.querySelector('#compose');
const nameInput = document.querySelector('#name');
const textInput = document.querySelector('#text');
const sendButton = document.querySelector('#send');

nameInput.value = localStorage.getItem('chat-name') ?? `guest-${Math.floor(Math.random() * 9000) + 1000}`;
nameInput.addEventListener('change', () => localStorage.setItem('chat-name', nameInput.value));

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
  subscription = subscribe(CHANNEL_URL, { cursor });
  subscription.on('open', () => setStatus('live', 'live'));
  subscription.on('message', (message) => {
    setStatus('live', 'live');
    show(message);
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
window.addEventListener('pagehide', () => subscription.close());
window.addEventListener('pageshow', (event) => {
  if (event.persisted && subscription.closed) {
    setStatus('connecting', 'connecting');
    connect(subscription.cursor);
  }
});

async function send() {
  const text = textInput.value.trim();
  if (!text) return;
  sendButton.disabled = true;
  try {
    const response = await fetch(CHANNEL_URL, {
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
