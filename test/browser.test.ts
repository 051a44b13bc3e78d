import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { chromium, type Browser, type Page, type Request } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startExample, type RunningExample } from './support/example-process.js';

// The chat example (examples/chat) in Debian's Chromium: two tabs, each running
// longpoll-kit/client loaded as an ES module from the built package (dist/). CI builds dist/
// (`npm run build`) before the tests and installs chromium when it is missing.

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = new URL('../test-artifacts/', import.meta.url);
const built = new URL('../dist/client/index.js', import.meta.url);
const hasChromium = existsSync(CHROMIUM);

/**
 * Wraps the page's fetch to record the channels of the messages its polls (GET under
 * /channels) brought, readable through `window.pollChannels()`. A poll's answer is written
 * whole, so reading it here first delays the client by nothing to speak of.
 */
const POLL_CHANNELS = `{
  const seen = new Set();
  const fetched = window.fetch.bind(window);
  window.pollChannels = () => [...seen].sort();
  window.fetch = async (input, init) => {
    const response = await fetched(input, init);
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url, location.href);
    if ((init?.method ?? 'GET') === 'GET' && url.pathname.startsWith('/channels') && response.status === 200) {
      // Read before the client reads its own copy: it aborts the request once it has.
      const body = await response.clone().json();
      body.messages.forEach((message) => seen.add(message.channel));
    }
    return response;
  };
}`;
const inCI = process.env.CI === 'true';

if (!hasChromium && inCI) {
  describe('the browser test under CI', () => {
    it('needs Chromium', () => {
      throw new Error(`${CHROMIUM} is missing: .ci/run installs it (apt-get install chromium)`);
    });
  });
} else if (!hasChromium) {
  console.warn(`\n!!! SKIPPING test/browser.test.ts: ${CHROMIUM} is missing (apt-get install chromium). Under CI=true this fails. !!!\n`);
}

describe.skipIf(!hasChromium)('the chat example in Chromium', () => {
  let chat: RunningExample | undefined;
  let browser: Browser | undefined;

  beforeAll(async () => {
    if (!existsSync(built)) throw new Error('dist/client/index.js is missing: run `npm run build` before this test');
    chat = await startExample('examples/chat/server.js');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 20_000,
      // Playwright turns the back/forward cache off by default; the chat page must work with it.
      ignoreDefaultArgs: ['--disable-back-forward-cache'],
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await chat?.stop();
  });

  // The screenshot is kept whether the test passed or failed: on a failure it is what explains it.
  let pages: Page[] = [];
  let screenshot = 'chat.png';
  afterEach(async () => {
    const opened = pages;
    pages = [];
    const shown = opened.at(-1);
    try {
      if (shown && !shown.isClosed()) {
        await mkdir(ARTIFACTS, { recursive: true });
        await shown.screenshot({ path: new URL(screenshot, ARTIFACTS).pathname, timeout: 5000 });
      }
    } finally {
      for (const page of opened) await page.close();
    }
  });

  /**
   * A tab on the chat, with everything that went wrong in it recorded, and its polls: every GET
   * under /channels and how many were in flight at most.
   */
  async function openTab(name: string) {
    const page = await browser!.newPage({ viewport: { width: 720, height: 640 } });
    pages.push(page);
    // The page takes its name from localStorage, so its first "here" already says it.
    await page.addInitScript((saved) => {
      if (location.protocol === 'http:') localStorage.setItem('chat-name', saved); // not on about:blank
    }, name);
    const problems: string[] = [];
    const scripts: string[] = [];
    // The channels of the messages the page's polls brought, seen by the page itself (Chromium
    // may drop a body before the DevTools protocol asks for it): fetch, wrapped before any script.
    // (Plain text: the test's own functions are transformed with helpers the page lacks.)
    await page.addInitScript({ content: POLL_CHANNELS });
    const polls = { urls: [] as string[], inFlight: 0, mostInFlight: 0 };
    const isPoll = (request: Request) => request.method() === 'GET' && new URL(request.url()).pathname.startsWith('/channels');
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('request', (request) => {
      if (!isPoll(request)) return;
      polls.urls.push(request.url());
      polls.mostInFlight = Math.max(polls.mostInFlight, ++polls.inFlight);
    });
    const settled = (request: Request) => {
      if (isPoll(request)) polls.inFlight--;
    };
    page.on('requestfinished', settled);
    page.on('requestfailed', settled);
    page.on('response', (response) => {
      if (response.request().resourceType() === 'script') scripts.push(`${response.status()} ${new URL(response.url()).pathname}`);
    });
    await page.goto(chat!.url.href, { timeout: 10_000 });
    await page.locator('#status', { hasText: 'live' }).waitFor({ timeout: 5000 });
    expect(await page.inputValue('#name')).toBe(name);
    return { page, problems, scripts, polls };
  }

  async function say(page: Page, text: string): Promise<number> {
    await page.fill('#text', text);
    const sentAt = Date.now();
    await page.click('#send');
    return sentAt;
  }

  it('shows a message typed in one tab in the other within 1 s', async () => {
    screenshot = 'chat.png';
    const ada = await openTab('ada');
    const grace = await openTab('grace');

    const sentAt = await say(ada.page, 'Hello from the first tab');
    await grace.page.locator('#messages li', { hasText: 'Hello from the first tab' }).waitFor({ timeout: 1000 });
    const latency = Date.now() - sentAt;
    expect(latency).toBeLessThan(1000);

    const repliedAt = await say(grace.page, 'And hello back from the second');
    await ada.page.locator('#messages li', { hasText: 'And hello back from the second' }).waitFor({ timeout: 1000 });
    expect(Date.now() - repliedAt).toBeLessThan(1000);

    // Each tab shows the whole conversation in order, its own lines marked as its own.
    for (const { page } of [ada, grace]) {
      await page.locator('#messages li', { hasText: 'And hello back' }).waitFor({ timeout: 1000 });
      const lines = await page.locator('#messages li').allInnerTexts();
      expect(lines.map((line) => line.split('\n').at(-1))).toEqual(['Hello from the first tab', 'And hello back from the second']);
    }
    expect(await ada.page.locator('#messages li.mine').allInnerTexts()).toEqual([expect.stringContaining('Hello from the first tab')]);
    expect(await grace.page.locator('#messages li.mine').allInnerTexts()).toEqual([expect.stringContaining('And hello back')]);

    // Each tab sees who is here: the other's "here" came on the presence channel.
    await ada.page.locator('#presence', { hasText: 'grace' }).waitFor({ timeout: 1000 });
    await grace.page.locator('#presence', { hasText: 'ada' }).waitFor({ timeout: 1000 });
    expect(await grace.page.locator('#presence').innerText()).toBe('here: ada, grace');

    // Lines and presence came over ONE poll at a time, on the URL that lists both channels:
    // following presence took no second connection.
    for (const { polls } of [ada, grace]) {
      expect(polls.urls.length).toBeGreaterThanOrEqual(2);
      for (const url of polls.urls) {
        const { pathname, searchParams } = new URL(url);
        expect(pathname).toBe('/channels');
        expect(searchParams.get('channels')).toBe('chat:lobby,presence:lobby');
      }
      expect(polls.mostInFlight).toBe(1);
    }
    for (const { page } of [ada, grace]) {
      expect(await page.evaluate(() => (window as { pollChannels?: () => string[] }).pollChannels!())).toEqual(['chat:lobby', 'presence:lobby']);
    }

    // The client came from the built package, as a module, with no bundler in between.
    expect(ada.scripts).toEqual(expect.arrayContaining(['200 /chat.js', '200 /lib/client/index.js', '200 /lib/client/subscription.js']));
    expect(ada.problems).toEqual([]);
    expect(grace.problems).toEqual([]);
    console.log(`chat: delivered across tabs in ${latency} ms; screenshot in test-artifacts/chat.png`);
  }, 30_000);

  it('subscribes again when the page comes back from the back/forward cache', async () => {
    screenshot = 'chat-bfcache.png';
    const ada = await openTab('ada');
    const grace = await openTab('grace');
    await grace.page.evaluate(() => {
      (window as { shows?: boolean[] }).shows = [];
      window.addEventListener('pageshow', (event) => (window as { shows?: boolean[] }).shows!.push(event.persisted));
    });
    // Leave the page, say something meanwhile, and come back.
    await grace.page.goto('about:blank', { timeout: 10_000 });
    await say(ada.page, 'Said while you were away');
    // A page restored from the cache gets no `load` event, only `pageshow`.
    await grace.page.goBack({ timeout: 10_000, waitUntil: 'commit' });
    await grace.page.waitForFunction(() => (window as { shows?: boolean[] }).shows?.length === 1, undefined, { timeout: 5000 });
    const shows = await grace.page.evaluate(() => (window as { shows?: boolean[] }).shows);
    // Chromium kept the page (it closed its subscription on pagehide, so nothing blocked the cache).
    expect(shows).toEqual([true]);
    await grace.page.locator('#messages li', { hasText: 'Said while you were away' }).waitFor({ timeout: 2000 });
    const sentAt = await say(ada.page, 'And after you came back');
    await grace.page.locator('#messages li', { hasText: 'And after you came back' }).waitFor({ timeout: 1000 });
    expect(Date.now() - sentAt).toBeLessThan(1000);
    expect(await grace.page.locator('#status').innerText()).toBe('live');
    expect(grace.problems).toEqual([]);
  }, 30_000);
});
